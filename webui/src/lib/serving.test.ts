import { describe, expect, it } from "vitest";
import { model } from "../test/fixtures";
import { instance, scaledModel, singleModel, upstream } from "../test/servingFixtures";
import {
  coolingLeft,
  hasServing,
  instanceTitle,
  instanceWhere,
  servedBy,
  showsServedBy,
  upstreamHealth,
  upstreamTitle,
} from "./serving";

describe("hasServing", () => {
  it("is false for entries from older managers and for one local process", () => {
    expect(hasServing(model())).toBe(false);
    expect(hasServing(singleModel())).toBe(false);
  });

  it("is true for several instances, an upstream, or room for more instances", () => {
    expect(hasServing(scaledModel())).toBe(true);
    expect(hasServing(singleModel({ upstreams: [upstream()] }))).toBe(true);
    expect(hasServing(singleModel({ instances: [], max_instances: 2 }))).toBe(true);
    expect(hasServing(model({ instances: [], upstreams: [upstream()], profiles: [] }))).toBe(true);
  });
});

describe("upstream health", () => {
  it("counts the cool-down down from when the entry arrived", () => {
    const u = upstream({ healthy: false, cooling_s: 12 });
    expect(coolingLeft(u, 10_000, 10_000)).toBe(12);
    expect(coolingLeft(u, 10_000, 13_500)).toBe(8.5);
    expect(coolingLeft(u, 10_000, 60_000)).toBe(0);
    expect(coolingLeft(u, undefined, 60_000)).toBe(12);
  });

  it("is cooling while the cool-down runs, then down until a check brings it back", () => {
    const u = upstream({ healthy: false, cooling_s: 5 });
    expect(upstreamHealth(u, 5)).toBe("cooling");
    expect(upstreamHealth(u, 0)).toBe("down");
    expect(upstreamHealth(upstream(), 0)).toBe("healthy");
  });

  it("puts the URL, failures, weight and the error in the hover text", () => {
    const u = upstream({ failures: 3, weight: 2, last_error: "connect error", cooling_s: 4 });
    expect(upstreamTitle(u, "cooling", 3.2)).toBe(
      "https://api.example.com/v1 · cooling 4s · 0 in flight · 3 failures · weight 2\nlast error: connect error",
    );
    expect(upstreamTitle(upstream(), "healthy", 0)).toBe(
      "https://api.example.com/v1 · healthy · 0 in flight",
    );
  });
});

describe("instances", () => {
  it("says where an instance runs", () => {
    expect(instanceWhere(instance())).toBe("gpu0");
    expect(instanceWhere(instance({ profile: "big", devices: ["gpu0", "gpu1"] }))).toBe(
      "big (gpu0, gpu1)",
    );
    expect(instanceWhere(instance({ profile: null, devices: [] }))).toBe("");
  });

  it("puts the details and the last error in the hover text", () => {
    const failed = instance({
      id: "demo-chat@3",
      state: "failed",
      pid: null,
      last_error: "exit code 1",
      uptime_s: null,
    });
    expect(instanceTitle(failed)).toBe(
      "demo-chat@3: failed · port 8080 · gpu0 · 0 in flight\nlast error: exit code 1",
    );
    expect(instanceTitle(instance({ in_flight: 2 }))).toBe(
      "demo-chat: ready · port 8080 · pid 120 · gpu0 · up 30s · 2 in flight",
    );
  });
});

describe("served by", () => {
  it("names an instance by its number and an upstream by its host", () => {
    expect(servedBy("demo-chat", "demo-chat@1")).toBe("#1");
    expect(servedBy("demo-chat", "demo-chat#12")).toBe("#12");
    expect(servedBy("demo", "demo-chat@1")).toBe("demo-chat@1");
    expect(servedBy("demo-chat", "demo-chat")).toBe("#0");
    expect(servedBy("demo-chat", "api.example.com")).toBe("api.example.com");
    expect(servedBy("demo-chat", "")).toBe("");
    expect(servedBy("demo-chat", undefined)).toBe("");
  });

  it("needs a column only when something other than the model's own process served", () => {
    expect(showsServedBy([{ model: "a" }, { model: "b", instance: "" }])).toBe(false);
    expect(showsServedBy([{ model: "a", instance: "a" }])).toBe(false);
    expect(
      showsServedBy([
        { model: "a", instance: "a" },
        { model: "a", instance: "a@1" },
      ]),
    ).toBe(true);
  });
});
