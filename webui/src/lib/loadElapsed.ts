import type { ModelInfo } from "../api/types";

/** Seconds spent loading, ticking locally from when the entry was received. */
/** Uptime of a ready model, ticking locally from when the entry was received. */
export function liveUptime(
  model: ModelInfo,
  seenAtMs: number | undefined,
  nowMs: number,
): number | null {
  if (model.state !== "ready" || model.uptime_s == null) return null;
  const drift = seenAtMs ? Math.max(0, (nowMs - seenAtMs) / 1000) : 0;
  return model.uptime_s + drift;
}

export function loadElapsed(
  model: ModelInfo,
  seenAtMs: number | undefined,
  nowMs: number,
): number | null {
  if (model.state !== "starting") return null;
  const base = model.start_elapsed_s ?? 0;
  const drift = seenAtMs ? Math.max(0, (nowMs - seenAtMs) / 1000) : 0;
  return base + drift;
}
