import { act, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import type { LogLine } from "../api/types";
import type { LogListener } from "../state/liveContext";
import { model } from "../test/fixtures";
import { liveValue, renderWithLive } from "../test/render";
import { LogsPage } from "./LogsPage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getLogs: vi.fn(),
}));
const mocked = vi.mocked(client);

const initial: LogLine[] = [
  { ts: 10, stream: "manager", line: "starting chat-small" },
  { ts: 11, stream: "stderr", line: "loading weights" },
];

let listeners: Map<string, LogListener>;
const subscribeLogs = vi.fn((name: string, fn: LogListener) => {
  listeners.set(name, fn);
  return () => listeners.delete(name);
});

function renderLogs(path = "/logs/chat-small") {
  return renderWithLive(
    <Routes>
      <Route path="/logs" element={<LogsPage />} />
      <Route path="/logs/:name" element={<LogsPage />} />
    </Routes>,
    liveValue({
      subscribeLogs,
      state: { models: [model({ name: "chat-small" }), model({ name: "embed" })] },
    }),
    path,
  );
}

beforeEach(() => {
  listeners = new Map();
  mocked.getLogs.mockResolvedValue(initial);
});

describe("LogsPage", () => {
  it("shows the recent lines and then tails live ones", async () => {
    renderLogs();
    expect(await screen.findByText("loading weights")).toBeInTheDocument();
    expect(mocked.getLogs).toHaveBeenCalledWith("chat-small", 200);
    expect(subscribeLogs).toHaveBeenCalledWith("chat-small", expect.any(Function));
    act(() => listeners.get("chat-small")?.({ ts: 12, stream: "stdout", line: "server ready" }));
    expect(screen.getByText("server ready")).toBeInTheDocument();
    expect(screen.getByText("3 of 3 lines")).toBeInTheDocument();
  });

  it("keeps live lines that arrive before the history", async () => {
    let resolve: (v: LogLine[]) => void = () => undefined;
    mocked.getLogs.mockReturnValue(new Promise((r) => (resolve = r)));
    renderLogs();
    act(() => listeners.get("chat-small")?.({ ts: 11, stream: "stderr", line: "loading weights" }));
    act(() => listeners.get("chat-small")?.({ ts: 13, stream: "stdout", line: "early live" }));
    await act(async () => resolve(initial));
    expect(screen.getByText("early live")).toBeInTheDocument();
    expect(screen.getAllByText("loading weights")).toHaveLength(1);
  });

  it("filters lines", async () => {
    renderLogs();
    await screen.findByText("loading weights");
    await userEvent.type(screen.getByLabelText("filter log lines"), "weights");
    expect(screen.queryByText("starting chat-small")).not.toBeInTheDocument();
    await userEvent.clear(screen.getByLabelText("filter log lines"));
    await userEvent.click(screen.getByRole("checkbox", { name: "stderr only" }));
    expect(screen.getByText("1 of 2 lines")).toBeInTheDocument();
  });

  it("switches model and unsubscribes from the old one", async () => {
    renderLogs();
    await screen.findByText("loading weights");
    await userEvent.selectOptions(screen.getByLabelText("model"), "embed");
    await waitFor(() => expect(mocked.getLogs).toHaveBeenCalledWith("embed", 200));
    expect(listeners.has("chat-small")).toBe(false);
    expect(listeners.has("embed")).toBe(true);
  });

  it("defaults to the first model and shows fetch errors", async () => {
    mocked.getLogs.mockRejectedValue(new Error("no such model"));
    renderLogs("/logs");
    expect(await screen.findByText("no such model")).toBeInTheDocument();
    expect(mocked.getLogs).toHaveBeenCalledWith("chat-small", 200);
  });
});
