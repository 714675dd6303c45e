import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { device, model } from "../test/fixtures";
import { liveValue, renderWithLive } from "../test/render";
import { ConnectionBadge } from "./ConnectionBadge";
import { DeviceCard } from "./DeviceCard";
import { LoadProgress } from "./LoadProgress";
import { MemoryBar } from "./MemoryBar";
import { loadElapsed } from "../lib/loadElapsed";
import { StateBadge } from "./StateBadge";
import { ThroughputChart } from "./ThroughputChart";

describe("StateBadge", () => {
  it.each([
    ["ready", "Ready", "state-ready"],
    ["stopped", "Stopped", "state-stopped"],
    ["failed", "Failed", "state-failed"],
    ["weird", "weird", "state-other"],
  ])("renders %s", (state, label, cls) => {
    render(<StateBadge state={state} />);
    const el = screen.getByText(label);
    expect(el).toHaveClass(cls);
  });

  it("shows elapsed seconds while starting", () => {
    render(<StateBadge state="starting" elapsedS={12.7} />);
    expect(screen.getByText("Starting 12s")).toHaveClass("state-starting");
  });
});

describe("LoadProgress", () => {
  it("reports elapsed against the timeout", () => {
    render(<LoadProgress elapsedS={30} timeoutS={120} />);
    const bar = screen.getByRole("progressbar", { name: "load progress" });
    expect(bar).toHaveAttribute("aria-valuenow", "30");
    expect(bar).toHaveAttribute("aria-valuemax", "120");
    expect(screen.getByText(/loading 30s \/ 2m 0s timeout/)).toBeInTheDocument();
  });
});

describe("loadElapsed", () => {
  it("ticks from the server's elapsed value", () => {
    const m = model({ state: "starting", start_elapsed_s: 4 });
    expect(loadElapsed(m, 10_000, 13_000)).toBe(7);
    expect(loadElapsed(model({ state: "ready" }), 0, 1)).toBeNull();
  });
});

describe("MemoryBar", () => {
  it("draws a segment per model and one for other use", () => {
    render(
      <MemoryBar
        total={1000}
        used={700}
        models={[
          { model: "a", memory_mb: 400 },
          { model: "b", memory_mb: 200 },
        ]}
      />,
    );
    expect(screen.getByTitle("a: 400 MiB")).toHaveStyle({ width: "40%" });
    expect(screen.getByTitle("b: 200 MiB")).toHaveStyle({ width: "20%" });
    expect(screen.getByTitle("other: 100 MiB")).toHaveStyle({ width: "10%" });
    expect(screen.getByRole("img")).toHaveAccessibleName("700 MiB of 1000 MiB used");
  });
});

describe("DeviceCard", () => {
  it("shows memory, utilisation, temperature and holders", () => {
    render(<DeviceCard device={device()} />);
    expect(screen.getByText("GPU 0")).toBeInTheDocument();
    expect(screen.getByText("42%")).toBeInTheDocument();
    expect(screen.getByText("55 °C")).toBeInTheDocument();
    expect(screen.getByText("chat-small")).toBeInTheDocument();
    expect(screen.getByText("Online")).toBeInTheDocument();
  });

  it("handles a missing temperature and offline devices", () => {
    render(
      <DeviceCard
        device={device({ temperature_celsius: null, online: false, offline_reason: "driver gone" })}
      />,
    );
    expect(screen.getByText("n/a")).toBeInTheDocument();
    expect(screen.getByText("Offline")).toBeInTheDocument();
    expect(screen.getByText("driver gone")).toBeInTheDocument();
  });
});

describe("ConnectionBadge", () => {
  it("reflects the stream status", () => {
    const { unmount } = renderWithLive(<ConnectionBadge />, liveValue({ status: "open" }));
    expect(screen.getByTestId("connection")).toHaveTextContent("Live");
    unmount();
    renderWithLive(
      <ConnectionBadge />,
      liveValue({ status: "reconnecting", retryInMs: 2000, attempts: 3 }),
    );
    const badge = screen.getByTestId("connection");
    expect(badge).toHaveTextContent("Offline");
    expect(badge).toHaveAttribute("title", expect.stringContaining("2.0 s"));
  });
});

describe("ThroughputChart", () => {
  it("waits for samples, then plots them and exposes counters", () => {
    const { unmount } = renderWithLive(<ThroughputChart />);
    expect(screen.getByText(/Waiting for throughput/)).toBeInTheDocument();
    expect(screen.getByTestId("throughput-counter")).toHaveAttribute("data-samples", "0");
    unmount();
    renderWithLive(
      <ThroughputChart />,
      liveValue({
        state: {
          throughput: [
            { ts: 1, requests_per_s: 0, tokens_per_s: 0 },
            { ts: 2, requests_per_s: 2, tokens_per_s: 40 },
          ],
          throughputSamples: 2,
          peak: { requests_per_s: 2, tokens_per_s: 40 },
          usageSeen: 3,
        },
      }),
    );
    const chart = JSON.parse(screen.getByTestId("chart-line").dataset.chart ?? "{}") as {
      datasets: { label: string; data: number[] }[];
    };
    expect(chart.datasets[0]?.data).toEqual([0, 40]);
    expect(chart.datasets[1]?.data).toEqual([0, 2]);
    const counter = screen.getByTestId("throughput-counter");
    expect(counter).toHaveAttribute("data-peak-tokens-per-s", "40");
    expect(counter).toHaveAttribute("data-requests-seen", "3");
    expect(counter).toHaveTextContent("40.0 tok/s");
  });
});
