import { useState } from "react";
import { errorMessage, getPlan } from "../api/client";
import type { Plan } from "../api/types";
import { formatMb } from "../lib/format";

/** What-if planner: would this model fit now, and what would be evicted? */
export function PlanPanel({ model, running = false }: { model: string; running?: boolean }) {
  const [plan, setPlan] = useState<Plan | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [planned, setPlanned] = useState<string | null>(null);

  const check = async () => {
    setLoading(true);
    setError(null);
    try {
      setPlan(await getPlan(model));
      setPlanned(model);
    } catch (err) {
      setError(errorMessage(err));
      setPlan(null);
    } finally {
      setLoading(false);
    }
  };

  const current = plan && planned === model ? plan : null;

  return (
    <section className="subcard" aria-labelledby="plan-title">
      <header className="row space-between">
        <h3 id="plan-title" className="card-title">
          What-if planner
        </h3>
        <button type="button" className="btn btn-s" onClick={check} disabled={loading}>
          {loading ? "Checking…" : current ? "Re-check" : "Check placement"}
        </button>
      </header>
      <p className="muted small">
        Asks the manager where {model} would go if started now, without starting it.
        {running ? " It is running already, so the plan shows where it is and what it holds." : ""}
      </p>
      {error ? <p className="text-bad small">{error}</p> : null}
      {current ? (
        <div data-testid="plan-result">
          <p>
            <span className={`badge ${current.fits ? "state-ready" : "state-failed"}`}>
              {current.fits ? "Fits" : "Does not fit"}
            </span>{" "}
            {current.profile ? (
              <span className="small">
                profile <strong>{current.profile}</strong>
              </span>
            ) : null}
          </p>
          {current.reason ? <p className="small">{current.reason}</p> : null}
          {current.evict.length ? (
            <p className="small text-warn">Would evict: {current.evict.join(", ")}</p>
          ) : (
            <p className="small muted">Nothing would be evicted.</p>
          )}
          {current.devices.length ? (
            <table className="table compact">
              <thead>
                <tr>
                  <th>Device</th>
                  <th>Needs</th>
                  <th>Free now</th>
                  <th>Free after</th>
                  <th>Held by</th>
                </tr>
              </thead>
              <tbody>
                {current.devices.map((d) => (
                  <tr key={d.name}>
                    <td>{d.name}</td>
                    <td>{formatMb(d.needed_mb)}</td>
                    <td>{formatMb(d.free_before_mb)}</td>
                    <td className={d.free_after_mb < 0 ? "text-bad" : ""}>
                      {formatMb(d.free_after_mb)}
                    </td>
                    <td className="small">{d.holders.length ? d.holders.join(", ") : "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
