import { act, render, screen, waitFor } from "@testing-library/react";
import { AxiosError, AxiosHeaders } from "axios";
import { useEffect } from "react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { setAdminKey } from "../api/auth";
import * as client from "../api/client";
import type { LogLine } from "../api/types";
import { FakeWebSocket } from "../test/fakeWebSocket";
import { device, model } from "../test/fixtures";
import { useLive } from "./liveContext";
import { LiveDataProvider } from "./LiveDataProvider";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getModels: vi.fn(),
  getDevices: vi.fn(),
}));
const mocked = vi.mocked(client);

function Probe({ onLog }: { onLog?: (l: LogLine) => void }) {
  const { state, status, subscribeLogs, loadError, needsKey, keyEpoch } = useLive();
  useEffect(() => (onLog ? subscribeLogs("chat-small", onLog) : undefined), [onLog, subscribeLogs]);
  return (
    <div>
      <span data-testid="status">{status}</span>
      <span data-testid="models">{state.models.map((m) => `${m.name}:${m.state}`).join(",")}</span>
      <span data-testid="devices">{state.devices.length}</span>
      <span data-testid="error">{loadError ?? ""}</span>
      <span data-testid="needs-key">{String(needsKey)}</span>
      <span data-testid="epoch">{keyEpoch}</span>
    </div>
  );
}

beforeEach(() => {
  FakeWebSocket.install();
  mocked.getModels.mockResolvedValue([model({ name: "chat-small" })]);
  mocked.getDevices.mockResolvedValue({ devices: [device()], ts: 1 });
});

describe("LiveDataProvider", () => {
  it("loads over REST, then follows the stream", async () => {
    render(
      <LiveDataProvider>
        <Probe />
      </LiveDataProvider>,
    );
    await waitFor(() =>
      expect(screen.getByTestId("models")).toHaveTextContent("chat-small:stopped"),
    );
    expect(screen.getByTestId("devices")).toHaveTextContent("1");
    const ws = FakeWebSocket.latest();
    expect(ws.url).toMatch(/^ws:\/\/.+\/api\/ws$/);
    expect(ws.protocols).toEqual(["llm-manager"]);
    act(() => ws.open());
    expect(screen.getByTestId("status")).toHaveTextContent("open");
    act(() => ws.receive({ type: "model", model: model({ name: "chat-small", state: "ready" }) }));
    expect(screen.getByTestId("models")).toHaveTextContent("chat-small:ready");
    act(() => ws.receive({ type: "devices", devices: [], ts: 2 }));
    expect(screen.getByTestId("devices")).toHaveTextContent("0");
  });

  it("subscribes to logs, re-subscribes after a reconnect and routes log lines", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const onLog = vi.fn();
    const { unmount } = render(
      <LiveDataProvider>
        <Probe onLog={onLog} />
      </LiveDataProvider>,
    );
    const ws = FakeWebSocket.latest();
    act(() => ws.open());
    expect(ws.sent).toContainEqual({ subscribe_logs: "chat-small" });
    act(() =>
      ws.receive({ type: "log", model: "chat-small", ts: 1, stream: "stdout", line: "hello" }),
    );
    act(() => ws.receive({ type: "log", model: "other", ts: 1, stream: "stdout", line: "nope" }));
    expect(onLog).toHaveBeenCalledTimes(1);
    expect(onLog).toHaveBeenCalledWith({ ts: 1, stream: "stdout", line: "hello" });

    act(() => ws.drop());
    act(() => vi.advanceTimersByTime(500));
    const ws2 = FakeWebSocket.latest();
    expect(ws2).not.toBe(ws);
    act(() => ws2.open());
    expect(ws2.sent).toEqual([{ subscribe_logs: "chat-small" }]);
    unmount();
    vi.useRealTimers();
  });

  it("reconnects with the admin key as a bearer subprotocol when it changes", async () => {
    render(
      <LiveDataProvider>
        <Probe />
      </LiveDataProvider>,
    );
    const first = FakeWebSocket.latest();
    expect(first.protocols).toEqual(["llm-manager"]);
    act(() => setAdminKey("k-123"));
    expect(first.readyState).toBe(FakeWebSocket.CLOSED);
    const second = FakeWebSocket.latest();
    expect(second.url).toMatch(/^ws:\/\/.+\/api\/ws$/);
    expect(second.url).not.toMatch(/token|k-123/);
    expect(second.protocols).toEqual(["llm-manager", "bearer.ay0xMjM"]);
    expect(screen.getByTestId("epoch")).toHaveTextContent("1");
    await waitFor(() => expect(mocked.getModels).toHaveBeenCalledTimes(2));

    act(() => setAdminKey("ключ-🔑"));
    expect(second.readyState).toBe(FakeWebSocket.CLOSED);
    expect(FakeWebSocket.latest().protocols).toEqual(["llm-manager", "bearer.0LrQu9GO0Yct8J-UkQ"]);

    act(() => setAdminKey(""));
    expect(FakeWebSocket.latest().protocols).toEqual(["llm-manager"]);
    expect(FakeWebSocket.instances.every((ws) => !ws.url.includes("?"))).toBe(true);
  });

  it("surfaces a load error", async () => {
    mocked.getModels.mockRejectedValue(new Error("boom"));
    render(
      <LiveDataProvider>
        <Probe />
      </LiveDataProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("error")).toHaveTextContent("boom"));
  });

  it("flags a 401 as a missing admin key", async () => {
    const config = { headers: new AxiosHeaders() };
    mocked.getModels.mockRejectedValue(
      new AxiosError("401", "ERR", config, null, {
        status: 401,
        statusText: "Unauthorized",
        headers: {},
        config,
        data: { error: { message: "the management API needs the admin key" } },
      }),
    );
    render(
      <LiveDataProvider>
        <Probe />
      </LiveDataProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("needs-key")).toHaveTextContent("true"));
  });
});
