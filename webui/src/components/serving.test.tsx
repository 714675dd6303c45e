import { act, render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ModelInfo, UsageRecord } from "../api/types";
import { model } from "../test/fixtures";
import { renderWithLive } from "../test/render";
import { scaledModel, singleModel, upstream } from "../test/servingFixtures";
import { ModelDetail } from "./ModelDetail";
import { ModelTable } from "./ModelTable";
import { RecentRequests } from "./RecentRequests";
import { ServingChips } from "./ServingChips";
import { ServingTable } from "./ServingTable";

afterEach(() => {
  vi.useRealTimers();
});

function chips() {
  return screen.getAllByTestId("serving-chip");
}

function chip(id: string): HTMLElement {
  const found = chips().find((c) => c.dataset.id === id);
  if (!found) throw new Error(`no chip ${id}`);
  return found;
}

describe("ServingChips", () => {
  it("shows every instance and upstream with its state, load and errors", () => {
    render(<ServingChips model={scaledModel()} seenAt={Date.now()} />);
    expect(chips().map((c) => [c.dataset.kind, c.dataset.id, c.dataset.state])).toEqual([
      ["instance", "demo-chat", "ready"],
      ["instance", "demo-chat@1", "ready"],
      ["instance", "demo-chat@2", "starting"],
      ["instance", "demo-chat@3", "failed"],
      ["upstream", "api.example.com", "healthy"],
      ["upstream", "10.0.0.7:8000", "cooling"],
    ]);
    expect(screen.getByTestId("serving-sum")).toHaveTextContent("2/4 ready");
    // the state colour
    expect(chip("demo-chat@2")).toHaveClass("is-starting");
    expect(chip("demo-chat@3")).toHaveClass("is-failed");
    expect(chip("10.0.0.7:8000")).toHaveClass("is-cooling");
    // where it runs and what it is running; idle instances carry no count
    expect(chip("demo-chat@1")).toHaveTextContent("#1gpu12 running");
    expect(chip("demo-chat@1")).toHaveAttribute("data-in-flight", "2");
    expect(chip("demo-chat")).not.toHaveTextContent("running");
    expect(chip("api.example.com")).toHaveTextContent("1 running");
    // the error on hover
    expect(chip("demo-chat@3").title).toContain("last error: exit code 1: out of memory");
    expect(chip("10.0.0.7:8000").title).toContain("connection refused");
    expect(screen.getByTestId("serving-fallbacks")).toHaveTextContent("fallback → other-model");
  });

  it("counts a cooling upstream down locally, then calls it down until a check revives it", () => {
    vi.useFakeTimers();
    render(<ServingChips model={scaledModel()} seenAt={Date.now()} />);
    expect(screen.getByTestId("cooling")).toHaveTextContent("cooling 12s");
    act(() => vi.advanceTimersByTime(3000));
    expect(screen.getByTestId("cooling")).toHaveTextContent("cooling 9s");
    act(() => vi.advanceTimersByTime(10_000));
    expect(screen.queryByTestId("cooling")).toBeNull();
    expect(chip("10.0.0.7:8000")).toHaveAttribute("data-state", "down");
    expect(chip("10.0.0.7:8000")).toHaveTextContent("down");
  });

  it("counts stopped instances without drawing them", () => {
    const m = scaledModel();
    const instances = (m.instances ?? []).map((i, n) => (n >= 2 ? { ...i, state: "stopped" } : i));
    render(<ServingChips model={{ ...m, instances }} seenAt={Date.now()} />);
    expect(chips().map((c) => c.dataset.id)).toEqual([
      "demo-chat",
      "demo-chat@1",
      "api.example.com",
      "10.0.0.7:8000",
    ]);
    expect(screen.getByTestId("serving-sum")).toHaveTextContent("2/4 ready");
  });

  it("shows an upstream-only model without instance counts", () => {
    render(
      <ServingChips
        model={model({ name: "cloud", instances: [], upstreams: [upstream()], fallbacks: [] })}
        seenAt={Date.now()}
      />,
    );
    expect(chips()).toHaveLength(1);
    expect(screen.queryByTestId("serving-sum")).toBeNull();
    expect(screen.queryByTestId("serving-fallbacks")).toBeNull();
  });
});

function table(models: ModelInfo[]) {
  return renderWithLive(
    <ModelTable models={models} seenAt={{}} pending={new Set()} onAction={() => undefined} />,
  );
}

describe("ModelTable with instances", () => {
  it("renders a one-instance model from a new manager exactly as an old manager's entry", () => {
    const old = table([model({ name: "plain", state: "ready", uptime_s: 10 })]).container.innerHTML;
    const now = table([singleModel({ uptime_s: 10 })]).container.innerHTML;
    expect(now).toBe(old);
    expect(now).not.toContain("serving");
  });

  it("puts the chips of a scaled-out model in a row under it", () => {
    table([singleModel(), scaledModel()]);
    const rows = within(screen.getByTestId("model-table")).getAllByRole("row");
    // header, plain, demo-chat, demo-chat's chips
    expect(rows).toHaveLength(4);
    expect(rows[2]).toHaveAttribute("data-testid", "model-row-demo-chat");
    expect(rows[2]).toHaveClass("has-serving");
    expect(rows[3]).toHaveClass("serving-row");
    expect(within(rows[3]!).getAllByTestId("serving-chip")).toHaveLength(6);
    expect(rows[1]).not.toHaveClass("has-serving");
  });
});

describe("ModelDetail with instances", () => {
  const detail = (m: ModelInfo) =>
    renderWithLive(
      <ModelDetail
        model={m}
        seenAt={Date.now()}
        config={undefined}
        configError={null}
        busy={false}
        onAction={() => undefined}
        onClose={() => undefined}
      />,
    );

  it("lists instances and upstreams in a sub-table, with limits and fallbacks", () => {
    detail(scaledModel());
    const t = screen.getByTestId("serving-table");
    const rows = within(t).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.dataset.id)).toEqual([
      "demo-chat",
      "demo-chat@1",
      "demo-chat@2",
      "demo-chat@3",
      "api.example.com",
      "10.0.0.7:8000",
    ]);
    expect(rows[1]).toHaveTextContent("gpu1");
    expect(rows[1]).toHaveTextContent("port 8081 · pid 123");
    expect(rows[3]).toHaveTextContent("exit code 1: out of memory");
    expect(rows[4]).toHaveTextContent("https://api.example.com/v1");
    expect(rows[4]).toHaveTextContent("weight 2");
    expect(within(rows[5]!).getByText(/Cooling 12s/)).toHaveAttribute("data-state", "cooling");
    expect(rows[5]).toHaveTextContent("3 failures");
    expect(screen.getByText("Instances").nextSibling).toHaveTextContent(
      "2 ready · 1 starting · 1 failed (min 1, max 4)",
    );
    expect(screen.getByText("Fallbacks").nextSibling).toHaveTextContent("other-model");
  });

  it("offers no start button for a model served by upstreams only", () => {
    detail(
      model({
        name: "cloud",
        port: null,
        state: "ready",
        max_instances: 0,
        instances: [],
        upstreams: [upstream()],
      }),
    );
    expect(screen.getByTestId("remote-cloud")).toHaveTextContent("remote only");
    expect(screen.queryByRole("button", { name: "Start cloud" })).toBeNull();
    expect(screen.getByText("Instances").nextSibling).toHaveTextContent("served by upstreams only");
    expect(screen.getByText("Port").nextSibling).toHaveTextContent("–");
  });

  it("adds nothing for one local process", () => {
    detail(singleModel());
    expect(screen.queryByTestId("serving-table")).toBeNull();
    expect(screen.queryByText("Instances")).toBeNull();
    expect(screen.queryByText("Fallbacks")).toBeNull();
  });
});

describe("ServingTable", () => {
  it("shows a healthy upstream and a down one", () => {
    render(
      <MemoryRouter>
        <ServingTable
          model={model({
            instances: [],
            upstreams: [upstream(), upstream({ id: "b:1", url: "http://b:1/v1", healthy: false })],
          })}
          seenAt={Date.now()}
        />
      </MemoryRouter>,
    );
    const states = screen.getAllByText(/Healthy|Down/).map((e) => e.dataset.state);
    expect(states).toEqual(["healthy", "down"]);
  });
});

function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    model: "demo-chat",
    endpoint: "chat/completions",
    status: 200,
    prompt_tokens: 5,
    completion_tokens: 7,
    total_tokens: 12,
    ttft_ms: 10,
    total_ms: 30,
    cost: 0,
    ts: 1_700_000_000,
    key_id: null,
    ...over,
  };
}

describe("RecentRequests served by", () => {
  it("has no column while every request was served by its model's one process", () => {
    render(
      <RecentRequests records={[record(), record({ instance: "demo-chat" })]} currency="USD" />,
    );
    expect(screen.queryByText("Served by")).toBeNull();
    expect(screen.queryByTestId("served-by")).toBeNull();
  });

  it("names the instance or upstream of each request once several serve", () => {
    render(
      <RecentRequests
        records={[
          record({ instance: "demo-chat@1" }),
          record({ instance: "api.example.com" }),
          record({ instance: "demo-chat" }),
          record({ model: "other-model" }),
        ]}
        currency="USD"
      />,
    );
    expect(screen.getByText("Served by")).toBeInTheDocument();
    const cells = screen.getAllByTestId("served-by");
    expect(cells.map((c) => c.textContent)).toEqual(["#1", "api.example.com", "#0", "–"]);
    expect(cells[0]).toHaveAttribute("title", "demo-chat@1");
  });
});
