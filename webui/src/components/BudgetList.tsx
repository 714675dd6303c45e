import type { Budget } from "../api/types";
import { formatMoney, formatNumber, formatTime, percent } from "../lib/format";

function amount(b: Budget, v: number, currency: string): string {
  return b.unit === "cost" ? formatMoney(v, currency) : `${formatNumber(v)} tokens`;
}

/** Budget burn: how much of each budget's limit is used this period. */
export function BudgetList({ budgets, currency }: { budgets: Budget[]; currency: string }) {
  return (
    <section className="card" aria-labelledby="budget-title">
      <header className="card-head">
        <h2 id="budget-title" className="card-title">
          Budgets
        </h2>
      </header>
      {budgets.length === 0 ? (
        <p className="muted empty">No budgets configured.</p>
      ) : (
        <ul className="budgets">
          {budgets.map((b) => {
            const pct = percent(b.used, b.limit);
            const cls = pct >= 100 ? "fill-bad" : pct >= 80 ? "fill-warn" : "fill-good";
            return (
              <li key={`${b.scope}-${b.name}`} data-testid="budget">
                <div className="row space-between wrap">
                  <strong>{b.name}</strong>
                  <span className="small muted">
                    {b.scope} · {b.period} · resets {formatTime(b.resets_at)}
                  </span>
                </div>
                <div
                  className="progress"
                  role="progressbar"
                  aria-label={`${b.name} budget used`}
                  aria-valuemin={0}
                  aria-valuemax={100}
                  aria-valuenow={Math.round(pct)}
                >
                  <div className={`progress-fill ${cls}`} style={{ width: `${pct}%` }} />
                </div>
                <span className="small">
                  {amount(b, b.used, currency)} of {amount(b, b.limit, currency)} ({pct.toFixed(0)}
                  %)
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
