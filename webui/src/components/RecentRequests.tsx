import type { UsageRecord } from "../api/types";
import { formatClock, formatMoney, formatNumber } from "../lib/format";
import { servedBy, showsServedBy } from "../lib/serving";

/** Requests as they arrive on the event stream (newest first). */
export function RecentRequests({
  records,
  currency,
}: {
  records: UsageRecord[];
  currency: string;
}) {
  const shown = records.slice(0, 25);
  // Only once a request was served by another instance or an upstream: one process per model needs no column.
  const withServedBy = showsServedBy(shown);
  return (
    <section className="card" aria-labelledby="recent-title">
      <header className="card-head">
        <h2 id="recent-title" className="card-title">
          Live requests
        </h2>
        <span className="muted small">since this page opened</span>
      </header>
      {records.length === 0 ? (
        <p className="muted empty">No requests yet.</p>
      ) : (
        <div className="scroll-x">
          <table className="table compact">
            <thead>
              <tr>
                <th>Time</th>
                <th>Model</th>
                {withServedBy ? <th>Served by</th> : null}
                <th>Endpoint</th>
                <th>Status</th>
                <th>Tokens</th>
                <th>TTFT</th>
                <th>Total</th>
                <th>Cost</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((r, i) => (
                <tr key={`${r.ts}-${i}`}>
                  <td className="mono">{formatClock(r.ts)}</td>
                  <td>{r.model}</td>
                  {withServedBy ? (
                    <td
                      className="mono small"
                      data-testid="served-by"
                      title={r.instance || undefined}
                    >
                      {servedBy(r.model, r.instance) || "–"}
                    </td>
                  ) : null}
                  <td className="mono small">{r.endpoint}</td>
                  <td className={Number(r.status) >= 400 ? "text-bad" : ""}>{r.status}</td>
                  <td>{formatNumber(r.total_tokens)}</td>
                  <td>{r.ttft_ms == null ? "–" : `${formatNumber(r.ttft_ms)} ms`}</td>
                  <td>{r.total_ms == null ? "–" : `${formatNumber(r.total_ms)} ms`}</td>
                  <td>{formatMoney(r.cost, currency)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
