import type { MemoryFootprint } from "../api/types";

/** One device's line in the declared-vs-measured table. */
export interface MemoryRow {
  device: string;
  declaredMb: number;
  /** null: not measured yet (the model has not run with this profile, or the device cannot tell per process). */
  measuredMb: number | null;
  /** What placement reserves: the larger of the two. */
  reservedMb: number;
  /** Measured over declared, in percent (positive: it holds more than the config says); null when unknown. */
  overPct: number | null;
  /** More than 10 % over: the server warns with a "footprint" event. */
  warn: boolean;
}

export const WARN_OVER_PCT = 10;

/** Rows for every device either figure names, in the config's order then the measured-only ones. */
export function memoryRows(f: MemoryFootprint | undefined): MemoryRow[] {
  if (!f) return [];
  const declared = f.memory_declared_mb ?? {};
  const measured = f.memory_measured_mb ?? null;
  const devices = [
    ...Object.keys(declared),
    ...Object.keys(measured ?? {}).filter((d) => !(d in declared)),
  ];
  return devices.map((device) => {
    const declaredMb = declared[device] ?? 0;
    const m: number | null = measured?.[device] ?? null;
    const overPct =
      m == null
        ? null
        : declaredMb > 0
          ? ((m - declaredMb) / declaredMb) * 100
          : m > 0
            ? Infinity
            : 0;
    return {
      device,
      declaredMb,
      measuredMb: m,
      reservedMb: Math.max(declaredMb, m ?? 0),
      overPct,
      warn: overPct != null && overPct > WARN_OVER_PCT,
    };
  });
}

/** "+75 %", "−5 %", "new" (declared 0), "" when unknown. */
export function formatOver(pct: number | null): string {
  if (pct == null) return "";
  if (!Number.isFinite(pct)) return "new";
  const r = Math.round(pct);
  return r > 0 ? `+${r} %` : r < 0 ? `−${-r} %` : "±0 %";
}
