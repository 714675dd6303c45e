// Scaled-out model entries in the shape GET /api/models-info and the `model` stream messages carry.
import type { InstanceInfo, ModelInfo, UpstreamInfo } from "../api/types";
import { model } from "./fixtures";

export function instance(over: Partial<InstanceInfo> = {}): InstanceInfo {
  return {
    id: "demo-chat",
    instance: 0,
    port: 8080,
    state: "ready",
    pid: 120,
    profile: "gpu0",
    devices: ["gpu0"],
    in_flight: 0,
    uptime_s: 30,
    last_error: null,
    ...over,
  };
}

export function upstream(over: Partial<UpstreamInfo> = {}): UpstreamInfo {
  return {
    id: "api.example.com",
    url: "https://api.example.com/v1",
    healthy: true,
    cooling_s: 0,
    in_flight: 0,
    failures: 0,
    last_error: null,
    weight: 1,
    ...over,
  };
}

/** 4 instances (ready, ready and busy, starting, failed) and 2 upstreams (healthy, cooling). */
export function scaledModel(over: Partial<ModelInfo> = {}): ModelInfo {
  return model({
    name: "demo-chat",
    state: "ready",
    pid: 120,
    profile: "gpu0",
    in_flight: 3,
    uptime_s: 30,
    max_instances: 4,
    min_instances: 1,
    fallbacks: ["other-model"],
    instances: [
      instance(),
      instance({
        id: "demo-chat@1",
        instance: 1,
        port: 8081,
        pid: 123,
        profile: "gpu1",
        devices: ["gpu1"],
        in_flight: 2,
        uptime_s: 12,
      }),
      instance({
        id: "demo-chat@2",
        instance: 2,
        port: 8082,
        state: "starting",
        pid: 124,
        profile: "cpu",
        devices: ["cpu0"],
        uptime_s: null,
      }),
      instance({
        id: "demo-chat@3",
        instance: 3,
        port: 8083,
        state: "failed",
        pid: null,
        profile: null,
        devices: [],
        uptime_s: null,
        last_error: "exit code 1: out of memory",
      }),
    ],
    upstreams: [
      upstream({ in_flight: 1, weight: 2 }),
      upstream({
        id: "10.0.0.7:8000",
        url: "http://10.0.0.7:8000/v1",
        healthy: false,
        cooling_s: 12,
        failures: 3,
        last_error: "connect error: connection refused",
      }),
    ],
    ...over,
  });
}

/** What a new manager sends for a plain model: one instance named like the model, no upstreams. */
export function singleModel(over: Partial<ModelInfo> = {}): ModelInfo {
  return model({
    name: "plain",
    state: "ready",
    max_instances: 1,
    min_instances: 0,
    fallbacks: [],
    instances: [instance({ id: "plain" })],
    upstreams: [],
    ...over,
  });
}
