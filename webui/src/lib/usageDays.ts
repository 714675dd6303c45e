import type { UsageByDay } from "../api/types";

const DAY_MS = 86_400_000;

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * One entry per (UTC) day of the period, zeros where nothing happened, so a
 * chart shows the burn over time rather than only the active days.
 */
export function fillDays(byDay: UsageByDay[], days: number, nowMs: number): UsageByDay[] {
  const known = new Map(byDay.map((d) => [d.day, d]));
  const lastKnown = byDay.reduce((max, d) => (d.day > max ? d.day : max), "");
  const today = isoDay(nowMs);
  const end =
    lastKnown > today ? Date.parse(`${lastKnown}T00:00:00Z`) : Date.parse(`${today}T00:00:00Z`);
  const out: UsageByDay[] = [];
  for (let i = Math.max(1, days) - 1; i >= 0; i--) {
    const day = isoDay(end - i * DAY_MS);
    out.push(known.get(day) ?? { day, requests: 0, total_tokens: 0, cost: 0 });
  }
  return out;
}
