import type { ManagerEvent } from "../api/types";
import { formatClock } from "../lib/format";

const KIND_CLASS: Record<string, string> = {
  ready: "state-ready",
  start: "state-starting",
  stop: "state-stopped",
  idle_stop: "state-stopped",
  evict: "state-starting",
  crash: "state-failed",
  fail: "state-failed",
  config: "state-other",
};

export function EventList({ events, limit = 12 }: { events: ManagerEvent[]; limit?: number }) {
  return (
    <section className="card" aria-labelledby="ev-title">
      <header className="card-head">
        <h2 id="ev-title" className="card-title">
          Recent events
        </h2>
      </header>
      {events.length === 0 ? (
        <p className="muted empty">No events since this page opened.</p>
      ) : (
        <ul className="events">
          {events.slice(0, limit).map((e, i) => (
            <li key={`${e.ts}-${e.model}-${e.kind}-${i}`}>
              <span className="mono muted small">{formatClock(e.ts)}</span>
              <span className={`badge ${KIND_CLASS[e.kind] ?? "state-other"}`}>{e.kind}</span>
              <strong>{e.model}</strong>
              {e.detail ? <span className="muted small ellipsis">{e.detail}</span> : null}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
