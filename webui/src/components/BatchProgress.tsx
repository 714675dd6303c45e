import type { Batch } from "../api/types";
import { batchProgress } from "../lib/batches";
import { formatNumber, percent } from "../lib/format";

/** Lines done of the batch's total: green completed, red failed, with the numbers under it. */
export function BatchProgress({ batch }: { batch: Batch }) {
  const { done, completed, failed, total } = batchProgress(batch);
  const pct = total > 0 ? Math.round(percent(done, total)) : 0;
  return (
    <div
      className="batch-progress"
      data-testid={`batch-progress-${batch.id}`}
      data-done={done}
      data-total={total}
    >
      <div
        className="progress progress-stack"
        role="progressbar"
        aria-label={`progress of ${batch.id}`}
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={done}
      >
        <div
          className="progress-fill fill-good"
          style={{ width: `${percent(completed, total)}%` }}
        />
        <div className="progress-fill fill-bad" style={{ width: `${percent(failed, total)}%` }} />
      </div>
      <span className="small muted nowrap">
        {formatNumber(done)} / {formatNumber(total)}
        {total > 0 ? ` (${pct}%)` : ""}
      </span>
    </div>
  );
}
