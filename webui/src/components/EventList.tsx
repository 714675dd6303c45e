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
        <p className="muted empty">No recent events.</p>
      ) : (
        <ul className="events">
          {events.slice(0, limit).map((e, i) => (
            <li key={`${e.ts}-${e.model}-${e.kind}-${i}`}>
              <div className="event-head">
                <span className="mono muted small">{formatClock(e.ts)}</span>
                <span className={`badge ${KIND_CLASS[e.kind] ?? "state-other"}`}>
                  {e.kind.replace("_", " ")}
                </span>
                <strong className="ellipsis">{e.model}</strong>
              </div>
              {e.detail ? (
                <div className="muted small event-detail" title={e.detail}>
                  {e.detail}
                </div>
              ) : null}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
