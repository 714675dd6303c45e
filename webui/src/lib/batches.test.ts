import { describe, expect, it } from "vitest";
import { batch } from "../test/batchFixtures";
import {
  batchEnded,
  batchProgress,
  formatBatchTime,
  isBatchActive,
  isBatchCancellable,
} from "./batches";

describe("batch helpers", () => {
  it("counts completed and failed lines as done", () => {
    expect(batchProgress(batch())).toEqual({ done: 7, completed: 6, failed: 1, total: 10 });
    expect(batchProgress(batch({ request_counts: null }))).toEqual({
      done: 0,
      completed: 0,
      failed: 0,
      total: 0,
    });
  });

  it("knows which statuses still move and which can be cancelled", () => {
    expect(isBatchActive(batch({ status: "cancelling" }))).toBe(true);
    expect(isBatchCancellable(batch({ status: "cancelling" }))).toBe(false);
    expect(isBatchCancellable(batch({ status: "validating" }))).toBe(true);
    expect(isBatchActive(batch({ status: "completed" }))).toBe(false);
  });

  it("names the end of a final batch", () => {
    expect(batchEnded(batch())).toBeNull();
    expect(batchEnded(batch({ status: "cancelled", cancelled_at: 5 }))).toEqual({
      label: "cancelled",
      ts: 5,
    });
    expect(batchEnded(batch({ status: "expired", failed_at: 4 }))).toEqual({
      label: "failed",
      ts: 4,
    });
  });
});

describe("formatBatchTime", () => {
  it("leaves out this year's year", () => {
    const ts = new Date(2026, 11, 2, 9, 32).getTime() / 1000;
    expect(formatBatchTime(ts, new Date(2026, 11, 3))).not.toContain("2026");
    expect(formatBatchTime(ts, new Date(2027, 0, 1))).toContain("2026");
    expect(formatBatchTime(null)).toBe("–");
  });
});
