import { screen } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import type { UsageSummary } from "../api/types";
import { liveValue, renderWithLive } from "../test/render";
import { UsagePage } from "./UsagePage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  getUsageSummary: vi.fn(),
}));
const mocked = vi.mocked(client);

const today = new Date().toISOString().slice(0, 10);

const summary: UsageSummary = {
  currency: "USD",
  total_requests: 1234,
  total_tokens: 56789,
  total_cost: 12.5,
  by_model: [
    {
      model: "chat-small",
      requests: 1000,
      prompt_tokens: 1,
      completion_tokens: 2,
      total_tokens: 50000,
      cost: 10,
    },
    {
      model: "embed",
      requests: 234,
      prompt_tokens: 1,
      completion_tokens: 0,
      total_tokens: 6789,
      cost: 2.5,
    },
  ],
  by_key: [{ key_id: "k1", requests: 1234, total_tokens: 56789, cost: 12.5 }],
  by_day: [
    { day: "2025-01-01", requests: 600, total_tokens: 30000, cost: 6 },
    { day: today, requests: 634, total_tokens: 26789, cost: 6.5 },
  ],
  forecast: { month_to_date_cost: 12.5, month_end_forecast: 40, daily_average: 1.3 },
  budgets: [
    {
      name: "team",
      scope: "global",
      period: "month",
      unit: "cost",
      limit: 50,
      used: 45,
      resets_at: 1_800_000_000,
    },
  ],
};

beforeEach(() => {
  mocked.getUsageSummary.mockResolvedValue(summary);
});

describe("UsagePage", () => {
  it("shows totals, charts by model, key and day, and budget burn", async () => {
    renderWithLive(<UsagePage />);
    expect(await screen.findByText("1,234")).toBeInTheDocument();
    expect(screen.getAllByText("$12.50")).toHaveLength(2);
    expect(screen.getByText("$40.00")).toBeInTheDocument();
    expect(mocked.getUsageSummary).toHaveBeenCalledWith(30);
    const [byModel, byKey, byDay] = screen.getAllByTestId("chart-bar");
    expect(JSON.parse(byModel?.dataset.chart ?? "{}").labels).toEqual(["chat-small", "embed"]);
    expect(JSON.parse(byKey?.dataset.chart ?? "{}").labels).toEqual(["k1"]);
    const daily = JSON.parse(byDay?.dataset.chart ?? "{}") as { labels: string[] };
    expect(daily.labels).toHaveLength(30);
    expect(daily.labels[29]).toBe(today.slice(5));
    const bar = screen.getByRole("progressbar", { name: "team budget used" });
    expect(bar).toHaveAttribute("aria-valuenow", "90");
    expect(screen.getByText(/\$45\.00 of \$50\.00 \(90%\)/)).toBeInTheDocument();
  });

  it("says so when usage accounting is not enabled", async () => {
    mocked.getUsageSummary.mockResolvedValue(null);
    renderWithLive(<UsagePage />);
    expect(await screen.findByTestId("usage-disabled")).toHaveTextContent(
      /usage accounting not enabled/i,
    );
  });

  it("lists live requests from the stream", async () => {
    renderWithLive(
      <UsagePage />,
      liveValue({
        state: {
          usage: [
            {
              model: "chat-small",
              endpoint: "/v1/chat/completions",
              status: 200,
              prompt_tokens: 5,
              completion_tokens: 7,
              total_tokens: 12,
              ttft_ms: 35,
              total_ms: 120,
              cost: 0.0012,
              ts: 1_700_000_000,
              key_id: null,
            },
          ],
        },
      }),
    );
    expect(await screen.findByText("/v1/chat/completions")).toBeInTheDocument();
    expect(screen.getByText("35 ms")).toBeInTheDocument();
    expect(screen.getByText("$0.0012")).toBeInTheDocument();
  });
});
