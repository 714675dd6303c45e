// Small formatting helpers shared by the pages.

export function formatMb(mb: number | null | undefined): string {
  if (mb == null || !Number.isFinite(mb)) return "–";
  if (Math.abs(mb) >= 1024) return `${(mb / 1024).toFixed(1)} GiB`;
  return `${Math.round(mb)} MiB`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function formatNumber(n: number | null | undefined, digits = 0): string {
  if (n == null || !Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function formatRate(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  if (n < 10) return n.toFixed(2);
  if (n < 100) return n.toFixed(1);
  return Math.round(n).toLocaleString("en-US");
}

export function formatMoney(n: number | null | undefined, currency = "USD"): string {
  if (n == null || !Number.isFinite(n)) return "–";
  const digits = Math.abs(n) > 0 && Math.abs(n) < 1 ? 4 : 2;
  try {
    if (n !== 0 && Math.abs(n) < 0.01) {
      // tiny per-request costs: keep two significant digits instead of showing $0.00
      return new Intl.NumberFormat("en-US", {
        style: "currency",
        currency,
        maximumSignificantDigits: 2,
      }).format(n);
    }
    return new Intl.NumberFormat("en-US", {
      style: "currency",
      currency,
      minimumFractionDigits: 2,
      maximumFractionDigits: digits,
    }).format(n);
  } catch {
    return `${n.toFixed(digits)} ${currency}`;
  }
}

/** Epoch seconds to a short local date-time. */
export function formatTime(ts: number | null | undefined): string {
  if (ts == null || !Number.isFinite(ts) || ts <= 0) return "–";
  return new Date(ts * 1000).toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** Epoch seconds to HH:MM:SS. */
export function formatClock(ts: number): string {
  return new Date(ts * 1000).toLocaleTimeString(undefined, { hour12: false });
}

export function percent(part: number, whole: number): number {
  if (!whole || !Number.isFinite(part) || !Number.isFinite(whole)) return 0;
  return Math.max(0, Math.min(100, (part / whole) * 100));
}
