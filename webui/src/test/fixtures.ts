import type { DeviceInfo, ModelInfo } from "../api/types";

export function model(over: Partial<ModelInfo> = {}): ModelInfo {
  return {
    name: "chat-small",
    aliases: [],
    mode: "Chat",
    port: 9001,
    state: "stopped",
    profile: null,
    profiles: ["default"],
    pid: null,
    in_flight: 0,
    queued: 0,
    last_used: null,
    uptime_s: null,
    last_error: null,
    auto_start: false,
    ttl_s: 600,
    start_elapsed_s: null,
    start_timeout_s: 120,
    restarts: 0,
    ...over,
  };
}

export function device(over: Partial<DeviceInfo> = {}): DeviceInfo {
  return {
    name: "GPU 0",
    plugin: "simulated",
    online: true,
    offline_reason: "",
    device_type: "GPU",
    memory_type: "VRAM",
    total_memory_mb: 24576,
    available_memory_mb: 16384,
    used_memory_mb: 8192,
    usage_percentage: 42,
    temperature_celsius: 55,
    models: [{ model: "chat-small", memory_mb: 6144 }],
    ...over,
  };
}
