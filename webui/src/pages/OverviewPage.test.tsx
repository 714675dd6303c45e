import { AxiosError, AxiosHeaders } from "axios";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import { device, model } from "../test/fixtures";
import { liveValue, renderWithLive } from "../test/render";
import { OverviewPage } from "./OverviewPage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getHealth: vi.fn(),
  getInfo: vi.fn(),
  startModel: vi.fn(),
  stopModel: vi.fn(),
}));

const mocked = vi.mocked(client);

beforeEach(() => {
  mocked.getHealth.mockResolvedValue({ status: "ok", uptime_s: 3700, version: "0.1.0" });
  mocked.getInfo.mockResolvedValue({
    name: "llm-manager",
    version: "0.1.0",
    host: "127.0.0.1",
    port: 8080,
    config_path: null,
    models: 2,
    devices: 1,
    auth_required: false,
    started_at: 0,
  });
});

const state = {
  models: [
    model({ name: "chat-small" }),
    model({ name: "embed", mode: "Embedding", state: "ready", uptime_s: 65 }),
  ],
  devices: [device()],
};

describe("OverviewPage", () => {
  it("shows health, models, devices and the chart", async () => {
    renderWithLive(<OverviewPage />, liveValue({ state }));
    expect(await screen.findByText("1h 1m")).toBeInTheDocument();
    expect(screen.getByTestId("health")).toHaveTextContent("ok");
    expect(screen.getByText("not required")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "chat-small" })).toHaveAttribute(
      "href",
      "/models/chat-small",
    );
    expect(screen.getByTestId("model-row-embed")).toHaveAttribute("data-state", "ready");
    expect(screen.getByText("1m 5s")).toBeInTheDocument();
    expect(screen.getAllByTestId("device")).toHaveLength(1);
    expect(screen.getByText("Live throughput")).toBeInTheDocument();
  });

  it("starts a model and applies the reply's state", async () => {
    mocked.startModel.mockResolvedValue({ model: "chat-small", state: "starting" });
    const setModelState = vi.fn();
    renderWithLive(<OverviewPage />, liveValue({ state, setModelState }));
    await userEvent.click(screen.getByRole("button", { name: "Start chat-small" }));
    expect(mocked.startModel).toHaveBeenCalledWith("chat-small");
    await waitFor(() => expect(setModelState).toHaveBeenCalledWith("chat-small", "starting"));
  });

  it("stops a ready model", async () => {
    mocked.stopModel.mockResolvedValue({ model: "embed", state: "stopped" });
    renderWithLive(<OverviewPage />, liveValue({ state }));
    await userEvent.click(screen.getByRole("button", { name: "Stop embed" }));
    expect(mocked.stopModel).toHaveBeenCalledWith("embed");
  });

  it("shows the server's error message when a start fails", async () => {
    const config = { headers: new AxiosHeaders() };
    mocked.startModel.mockRejectedValue(
      new AxiosError("fail", "ERR", config, null, {
        status: 409,
        statusText: "Conflict",
        headers: {},
        config,
        data: { error: { message: "not enough GPU memory", type: "placement", code: "no_fit" } },
      }),
    );
    renderWithLive(<OverviewPage />, liveValue({ state }));
    await userEvent.click(screen.getByRole("button", { name: "Start chat-small" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "start chat-small: not enough GPU memory (HTTP 409)",
    );
  });

  it("shows load progress for a starting model", () => {
    renderWithLive(
      <OverviewPage />,
      liveValue({
        state: {
          models: [model({ state: "starting", start_elapsed_s: 5 })],
          modelSeenAt: { "chat-small": Date.now() },
        },
      }),
    );
    expect(screen.getByRole("progressbar", { name: "load progress" })).toBeInTheDocument();
    expect(screen.getByText(/Starting 5s/)).toBeInTheDocument();
  });

  it("reports an unreachable server", async () => {
    mocked.getHealth.mockRejectedValue(new Error("Network Error"));
    renderWithLive(<OverviewPage />, liveValue({ state }));
    expect(await screen.findByText("unreachable")).toBeInTheDocument();
  });
});
