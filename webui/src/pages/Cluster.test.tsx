import { screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import type { ClusterNode } from "../api/types";
import { renderWithLive } from "../test/render";
import { ClusterPage } from "./Cluster";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getCluster: vi.fn(),
}));
const mocked = vi.mocked(client);

function node(name: string, up: boolean, extra: Partial<ClusterNode> = {}): ClusterNode {
  return {
    name,
    url: `http://10.0.0.${name.length}:8080`,
    started_at: 1_700_000_000,
    last_seen: 1_700_000_100,
    seen_s_ago: up ? 1 : 12,
    up,
    self: false,
    models: [],
    devices: [],
    ...extra,
  };
}

beforeEach(() => {
  mocked.getCluster.mockReset();
});

describe("ClusterPage", () => {
  it("lists the nodes with their devices, models and whether each is up", async () => {
    mocked.getCluster.mockResolvedValue({
      node: "alpha",
      nodes: [
        node("alpha", true, {
          self: true,
          devices: [{ name: "gpu0", online: true, free_mb: 20000, total_mb: 24000 }],
          models: [
            {
              name: "chat-a",
              aliases: [],
              mode: "Chat",
              state: "ready",
              in_flight: 2,
              queued: 0,
              instances: [{ id: "chat-a", state: "ready" }],
              upstreams: [],
            },
          ],
        }),
        node("gamma", false, {
          models: [
            {
              name: "chat-c",
              aliases: [],
              mode: "Chat",
              state: "stopped",
              in_flight: 0,
              queued: 0,
              instances: [],
              upstreams: [],
            },
          ],
        }),
      ],
    });
    renderWithLive(<ClusterPage />);
    expect(await screen.findByTestId("cluster-summary")).toHaveTextContent("1 of 2 nodes up");
    const alpha = screen.getByTestId("node-alpha");
    expect(within(alpha).getByText("(this node)")).toBeInTheDocument();
    expect(within(alpha).getByText("up")).toBeInTheDocument();
    expect(within(alpha).getByText(/free of/)).toBeInTheDocument();
    expect(
      within(screen.getByTestId("node-model-alpha-chat-a")).getByText(/2 in flight/),
    ).toBeInTheDocument();
    const gamma = screen.getByTestId("node-gamma");
    expect(within(gamma).getByText("down")).toBeInTheDocument();
    expect(gamma).toHaveClass("revoked");
  });

  it("says so when there is no cluster", async () => {
    mocked.getCluster.mockResolvedValue({ node: "solo", nodes: [] });
    renderWithLive(<ClusterPage />);
    expect(await screen.findByTestId("cluster-empty")).toBeInTheDocument();
  });
});
