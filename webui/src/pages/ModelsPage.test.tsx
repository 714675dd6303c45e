import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import { model } from "../test/fixtures";
import { liveValue, renderWithLive } from "../test/render";
import { ModelsPage } from "./ModelsPage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getConfig: vi.fn(),
  getPlan: vi.fn(),
  startModel: vi.fn(),
  stopModel: vi.fn(),
}));
const mocked = vi.mocked(client);

const state = {
  models: [
    model({ name: "chat-small", profiles: ["gpu", "cpu"] }),
    model({ name: "embed", mode: "Embedding" }),
    model({ name: "rerank", mode: "Reranker", state: "failed", last_error: "exit code 1" }),
  ],
};

function renderAt(path: string) {
  return renderWithLive(
    <Routes>
      <Route path="/models" element={<ModelsPage />} />
      <Route path="/models/:name" element={<ModelsPage />} />
    </Routes>,
    liveValue({ state }),
    path,
  );
}

beforeEach(() => {
  mocked.getConfig.mockResolvedValue({
    program: { port: 8080 },
    "chat-small": { mode: "Chat", model_path: "/models/x.gguf", api_key: "***" },
  });
  mocked.startModel.mockImplementation(async (n) => ({ model: n, state: "starting" }));
});

describe("ModelsPage", () => {
  it("starts the selected models as a batch", async () => {
    renderAt("/models");
    const startSelected = screen.getByRole("button", { name: "Start selected" });
    expect(startSelected).toBeDisabled();
    await userEvent.click(screen.getByRole("checkbox", { name: "select chat-small" }));
    await userEvent.click(screen.getByRole("checkbox", { name: "select embed" }));
    expect(screen.getByText("2 selected")).toBeInTheDocument();
    await userEvent.click(startSelected);
    await waitFor(() => expect(mocked.startModel).toHaveBeenCalledTimes(2));
    expect(mocked.startModel.mock.calls.map((c) => c[0])).toEqual(["chat-small", "embed"]);
  });

  it("select all ticks every model", async () => {
    renderAt("/models");
    await userEvent.click(screen.getByRole("checkbox", { name: "select all models" }));
    expect(screen.getByText("3 selected")).toBeInTheDocument();
  });

  it("shows a failed model's error and offers a retry", () => {
    renderAt("/models");
    expect(screen.getByText("exit code 1")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Start rerank" })).toHaveTextContent("Retry");
  });

  it("shows details with the model's config block", async () => {
    renderAt("/models/chat-small");
    const detail = screen.getByTestId("model-detail");
    expect(within(detail).getByText("gpu, cpu")).toBeInTheDocument();
    const cfg = await screen.findByTestId("model-config");
    expect(cfg).toHaveTextContent('"model_path": "/models/x.gguf"');
  });

  it("runs the what-if planner", async () => {
    mocked.getPlan.mockResolvedValue({
      model: "chat-small",
      fits: true,
      profile: "gpu",
      evict: ["embed"],
      reason: "fits on GPU 0 after evicting embed",
      devices: [
        {
          name: "GPU 0",
          needed_mb: 6000,
          free_before_mb: 2000,
          free_after_mb: 500,
          holders: ["embed"],
        },
      ],
    });
    renderAt("/models/chat-small");
    await userEvent.click(screen.getByRole("button", { name: "Check placement" }));
    const result = await screen.findByTestId("plan-result");
    expect(mocked.getPlan).toHaveBeenCalledWith("chat-small");
    expect(result).toHaveTextContent("Fits");
    expect(result).toHaveTextContent("Would evict: embed");
    expect(result).toHaveTextContent("5.9 GiB");
  });

  it("reports an unknown model", () => {
    renderAt("/models/nope");
    expect(screen.getByText(/Unknown model/)).toBeInTheDocument();
  });
});
