import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach, vi } from "vitest";

// jsdom has no canvas: charts render as a placeholder that exposes their data.
vi.mock("react-chartjs-2", () => {
  const fake =
    (kind: string) =>
    ({
      data,
    }: {
      data: { labels?: unknown[]; datasets: { label?: string; data: unknown[] }[] };
    }) => <div data-testid={`chart-${kind}`} data-chart={JSON.stringify(data)} />;
  return { Line: fake("line"), Bar: fake("bar") };
});

afterEach(() => {
  cleanup();
  window.localStorage.clear();
});
