import { describe, expect, it } from "vitest";
import { device, model } from "../test/fixtures";
import {
  initialLiveState,
  liveReducer,
  MAX_THROUGHPUT_POINTS,
  type LiveState,
} from "./liveReducer";
import type { ServerMessage } from "../api/types";

const apply = (s: LiveState, msg: ServerMessage, now = 1000) =>
  liveReducer(s, { type: "server", msg, now });

describe("liveReducer", () => {
  it("takes models and devices from the snapshot", () => {
    const s = apply(initialLiveState, {
      type: "snapshot",
      models: [model({ name: "a" }), model({ name: "b" })],
      devices: [device()],
      ts: 5,
    });
    expect(s.loaded).toBe(true);
    expect(s.models.map((m) => m.name)).toEqual(["a", "b"]);
    expect(s.devices).toHaveLength(1);
    expect(s.devicesTs).toBe(5);
    expect(s.modelSeenAt).toEqual({ a: 1000, b: 1000 });
  });

  it("seeds recent events from the snapshot, newest first", () => {
    const s = apply(initialLiveState, {
      type: "snapshot",
      models: [],
      devices: [],
      events: [
        { kind: "start", model: "a", detail: "", ts: 1 },
        { kind: "ready", model: "a", detail: "", ts: 2 },
      ],
      ts: 3,
    });
    expect(s.events.map((e) => e.kind)).toEqual(["ready", "start"]);
  });

  it("replaces one model in place on a model message and appends unknown ones", () => {
    let s = apply(initialLiveState, {
      type: "snapshot",
      models: [model({ name: "a" }), model({ name: "b" })],
      devices: [],
      ts: 1,
    });
    s = apply(
      s,
      { type: "model", model: model({ name: "a", state: "starting", start_elapsed_s: 2 }) },
      2000,
    );
    expect(s.models[0]?.state).toBe("starting");
    expect(s.models.map((m) => m.name)).toEqual(["a", "b"]);
    expect(s.modelSeenAt.a).toBe(2000);
    s = apply(s, { type: "model", model: model({ name: "c" }) });
    expect(s.models.map((m) => m.name)).toEqual(["a", "b", "c"]);
  });

  it("keeps a bounded throughput history and tracks the peak", () => {
    let s = initialLiveState;
    for (let i = 0; i < MAX_THROUGHPUT_POINTS + 5; i++) {
      s = apply(s, {
        type: "throughput",
        ts: i,
        requests_per_s: i === 3 ? 7 : 1,
        tokens_per_s: i * 2,
        by_model: { m: { requests_per_s: 1, tokens_per_s: 2 } },
      });
    }
    expect(s.throughput).toHaveLength(MAX_THROUGHPUT_POINTS);
    expect(s.throughput[0]?.ts).toBe(5);
    expect(s.peak.requests_per_s).toBe(7);
    expect(s.peak.tokens_per_s).toBe((MAX_THROUGHPUT_POINTS + 4) * 2);
    expect(s.throughputSamples).toBe(MAX_THROUGHPUT_POINTS + 5);
    expect(s.byModelRate.m?.tokens_per_s).toBe(2);
  });

  it("collects usage records and events newest first", () => {
    let s = apply(initialLiveState, {
      type: "event",
      event: { kind: "start", model: "a", detail: "", ts: 1 },
    });
    s = apply(s, { type: "event", event: { kind: "ready", model: "a", detail: "", ts: 2 } });
    expect(s.events.map((e) => e.kind)).toEqual(["ready", "start"]);
    s = apply(s, {
      type: "usage",
      record: {
        model: "a",
        endpoint: "/v1/chat/completions",
        status: 200,
        prompt_tokens: 3,
        completion_tokens: 4,
        total_tokens: 7,
        ttft_ms: 10,
        total_ms: 20,
        cost: 0,
        ts: 3,
        key_id: null,
      },
    });
    expect(s.usage).toHaveLength(1);
    expect(s.usageSeen).toBe(1);
  });

  it("replaces devices on a devices message", () => {
    const s = apply(initialLiveState, {
      type: "devices",
      devices: [device(), device({ name: "GPU 1" })],
      ts: 9,
    });
    expect(s.devices.map((d) => d.name)).toEqual(["GPU 0", "GPU 1"]);
    expect(s.devicesTs).toBe(9);
  });

  it("applies an optimistic state from a start reply", () => {
    let s = liveReducer(initialLiveState, {
      type: "models",
      models: [model({ name: "a" })],
      now: 1,
    });
    s = liveReducer(s, { type: "modelState", name: "a", state: "starting", now: 5 });
    expect(s.models[0]?.state).toBe("starting");
    expect(s.models[0]?.start_elapsed_s).toBe(0);
    expect(liveReducer(s, { type: "modelState", name: "zz", state: "ready", now: 6 })).toBe(s);
  });

  it("ignores unknown message types", () => {
    const s = apply(initialLiveState, { type: "nope" } as unknown as ServerMessage);
    expect(s).toBe(initialLiveState);
  });
});
