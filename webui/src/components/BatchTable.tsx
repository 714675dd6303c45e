import type { Batch } from "../api/types";
import { batchEnded, batchProgress, formatBatchTime, isBatchCancellable } from "../lib/batches";
import { formatNumber, formatTime } from "../lib/format";
import { BatchProgress } from "./BatchProgress";
import { BatchStatusBadge } from "./BatchStatusBadge";

export type BatchFileKind = "output" | "error";

interface Props {
  batches: Batch[];
  /** id of the batch whose cancel is in flight */
  busyId: string | null;
  onCancel: (batch: Batch) => void;
  onDownload: (batch: Batch, kind: BatchFileKind) => void;
}

function Ended({ batch }: { batch: Batch }) {
  const ended = batchEnded(batch);
  if (ended) {
    return (
      <>
        <span className="block muted small">{ended.label}</span>
        <span className="nowrap" title={formatTime(ended.ts)}>
          {formatBatchTime(ended.ts)}
        </span>
      </>
    );
  }
  if (batch.expires_at) {
    return (
      <span title="unfinished lines fail at this time">
        <span className="block muted small">expires</span>
        <span className="nowrap" title={formatTime(batch.expires_at)}>
          {formatBatchTime(batch.expires_at)}
        </span>
      </span>
    );
  }
  return <span className="muted">–</span>;
}

export function BatchTable({ batches, busyId, onCancel, onDownload }: Props) {
  return (
    <div className="scroll-x batch-scroll">
      <table className="table rtable" data-testid="batch-table">
        <thead>
          <tr>
            <th>Batch</th>
            <th>Endpoint</th>
            <th>Status</th>
            <th>Created</th>
            <th>Progress</th>
            <th>Failed</th>
            <th>Finished / expires</th>
            <th className="col-actions">Files</th>
          </tr>
        </thead>
        <tbody>
          {batches.map((b) => {
            const { failed } = batchProgress(b);
            const meta = b.metadata ? Object.entries(b.metadata) : [];
            return (
              <tr key={b.id} data-testid={`batch-row-${b.id}`} data-status={b.status}>
                <td data-label="Batch" className="cell-name batch-id">
                  <span className="mono">{b.id}</span>
                  {meta.length ? (
                    <span className="block small muted">
                      {meta.map(([k, v]) => `${k}: ${v}`).join(", ")}
                    </span>
                  ) : null}
                </td>
                <td data-label="Endpoint" className="mono nowrap" title={b.endpoint}>
                  {b.endpoint.replace(/^\/v1\//, "")}
                </td>
                <td data-label="Status">
                  <BatchStatusBadge status={b.status} />
                </td>
                <td data-label="Created" title={formatTime(b.created_at)}>
                  {formatBatchTime(b.created_at)}
                </td>
                <td data-label="Progress">
                  <BatchProgress batch={b} />
                </td>
                <td data-label="Failed" className={failed > 0 ? "text-bad" : "muted"}>
                  {formatNumber(failed)}
                </td>
                <td data-label="Finished / expires">
                  <Ended batch={b} />
                </td>
                <td className="col-actions">
                  <div className="batch-actions">
                    {isBatchCancellable(b) ? (
                      <button
                        type="button"
                        className="btn btn-danger btn-s"
                        disabled={busyId === b.id}
                        onClick={() => onCancel(b)}
                        aria-label={`Cancel ${b.id}`}
                      >
                        Cancel
                      </button>
                    ) : null}
                    {b.output_file_id ? (
                      <button
                        type="button"
                        className="btn btn-s"
                        onClick={() => onDownload(b, "output")}
                        aria-label={`Download output of ${b.id}`}
                        title={`download the output file ${b.output_file_id}`}
                      >
                        ⤓ output
                      </button>
                    ) : null}
                    {b.error_file_id ? (
                      <button
                        type="button"
                        className="btn btn-s text-bad"
                        onClick={() => onDownload(b, "error")}
                        aria-label={`Download errors of ${b.id}`}
                        title={`download the error file ${b.error_file_id}`}
                      >
                        ⤓ errors
                      </button>
                    ) : null}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
