import type { Batch } from "../api/types";

/** Statuses in which a batch still changes (the page polls while one is shown). */
export const ACTIVE_BATCH_STATUSES = ["validating", "in_progress", "finalizing", "cancelling"];
/** Statuses in which POST /v1/batches/{id}/cancel does something. */
export const CANCELLABLE_BATCH_STATUSES = ["validating", "in_progress", "finalizing"];

export function isBatchActive(b: Batch): boolean {
  return ACTIVE_BATCH_STATUSES.includes(b.status);
}

export function isBatchCancellable(b: Batch): boolean {
  return CANCELLABLE_BATCH_STATUSES.includes(b.status);
}

/** Lines done (completed + failed) and the total; a missing request_counts counts as 0 of 0. */
export function batchProgress(b: Batch): {
  done: number;
  completed: number;
  failed: number;
  total: number;
} {
  const c = b.request_counts;
  const completed = Math.max(0, c?.completed ?? 0);
  const failed = Math.max(0, c?.failed ?? 0);
  const total = Math.max(0, c?.total ?? 0, completed + failed);
  return { done: completed + failed, completed, failed, total };
}

/** The time a final batch ended, with its label ("completed" …); null while it runs. */
export function batchEnded(b: Batch): { label: string; ts: number } | null {
  const ends: [string, number | null | undefined][] = [
    ["completed", b.completed_at],
    ["failed", b.failed_at],
    ["expired", b.expired_at],
    ["cancelled", b.cancelled_at],
  ];
  for (const [label, ts] of ends) {
    if (b.status === label && ts) return { label, ts };
  }
  for (const [label, ts] of ends) {
    if (ts) return { label, ts };
  }
  return null;
}

/** Epoch seconds as a short local time: no year when it is this year's (formatTime in the tooltip). */
export function formatBatchTime(ts: number | null | undefined, now: Date = new Date()): string {
  if (ts == null || !Number.isFinite(ts) || ts <= 0) return "–";
  const d = new Date(ts * 1000);
  return d.toLocaleString(undefined, {
    year: d.getFullYear() === now.getFullYear() ? undefined : "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}
