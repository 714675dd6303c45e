// How a model is served beyond one local process: instances, remote upstreams, fallbacks.
// Pure helpers, so the chips, the detail table and the request list read the entry the same way.
import type { InstanceInfo, ModelInfo, UpstreamInfo } from "../api/types";
import { formatDuration } from "./format";

/** True when there is more to show than the one local process every model had before. */
export function hasServing(m: ModelInfo): boolean {
  return (
    (m.instances?.length ?? 0) > 1 || (m.upstreams?.length ?? 0) > 0 || (m.max_instances ?? 1) > 1
  );
}

export type UpstreamHealth = "healthy" | "cooling" | "down";

/** Seconds left in an upstream's cool-down, ticking down locally from when the entry arrived. */
export function coolingLeft(u: UpstreamInfo, seenAtMs: number | undefined, nowMs: number): number {
  const base = Number.isFinite(u.cooling_s) ? u.cooling_s : 0;
  const drift = seenAtMs ? Math.max(0, (nowMs - seenAtMs) / 1000) : 0;
  return Math.max(0, base - drift);
}

/** Cooling while its cool-down runs; down once it is over but no health check has brought it back. */
export function upstreamHealth(u: UpstreamInfo, coolingS: number): UpstreamHealth {
  if (coolingS > 0) return "cooling";
  return u.healthy ? "healthy" : "down";
}

/** Countdowns show whole seconds rounded up, so "cooling 1s" is the last one before 0. */
export function formatCountdown(seconds: number): string {
  return formatDuration(Math.ceil(seconds));
}

/** "#1" for an instance (its id repeats the model name). */
export function instanceLabel(i: InstanceInfo): string {
  return `#${i.instance}`;
}

/** Where an instance runs: its profile, with its devices when they differ from the profile's name. */
export function instanceWhere(i: InstanceInfo): string {
  const devices = (i.devices ?? []).join(", ");
  if (!i.profile) return devices;
  return devices && devices !== i.profile ? `${i.profile} (${devices})` : i.profile;
}

export function instanceTitle(i: InstanceInfo): string {
  const parts = [`${i.id}: ${i.state}`, `port ${i.port}`];
  if (i.pid != null) parts.push(`pid ${i.pid}`);
  const where = instanceWhere(i);
  if (where) parts.push(where);
  if (i.state === "ready" && i.uptime_s != null) parts.push(`up ${formatDuration(i.uptime_s)}`);
  parts.push(`${i.in_flight} in flight`);
  const title = parts.join(" · ");
  return i.last_error ? `${title}\nlast error: ${i.last_error}` : title;
}

export function upstreamTitle(u: UpstreamInfo, health: UpstreamHealth, coolingS: number): string {
  const parts = [u.url, health === "cooling" ? `cooling ${formatCountdown(coolingS)}` : health];
  parts.push(`${u.in_flight} in flight`);
  if (u.failures) parts.push(`${u.failures} failure${u.failures === 1 ? "" : "s"}`);
  if (u.weight !== 1) parts.push(`weight ${u.weight}`);
  const title = parts.join(" · ");
  return u.last_error ? `${title}\nlast error: ${u.last_error}` : title;
}

/**
 * Short name of what served a request, relative to its model: "#1" for an instance ("#0" for the one named
 * like the model), the host for an upstream, "" when the row does not say (older servers, cached answers).
 * An instance id is the model's name, a separator ("@" today) and the instance number.
 */
export function servedBy(model: string, instance: string | undefined): string {
  if (!instance) return "";
  if (instance === model) return "#0";
  const rest = instance.startsWith(model) ? instance.slice(model.length) : "";
  const n = /^[@#](\d+)$/.exec(rest)?.[1];
  return n === undefined ? instance : `#${n}`;
}

/** A "served by" column earns its place once some request was served by more than the model's one process. */
export function showsServedBy(records: { model: string; instance?: string }[]): boolean {
  return records.some((r) => Boolean(r.instance) && r.instance !== r.model);
}
