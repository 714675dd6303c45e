import { useEffect, useMemo, useRef, useState } from "react";
import { errorMessage, getLogs } from "../api/client";
import type { LogLine } from "../api/types";
import { formatClock } from "../lib/format";
import { mergeLogLines } from "../lib/logMerge";
import { useLive } from "../state/liveContext";

export const MAX_LOG_LINES = 2000;

/** Last lines of a model's log, then a live tail over the event stream. */
export function LogView({ model }: { model: string }) {
  const { subscribeLogs } = useLive();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [follow, setFollow] = useState(true);
  const [filter, setFilter] = useState("");
  const [showStderrOnly, setStderrOnly] = useState(false);
  const boxRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let cancelled = false;
    let loaded = false;
    const early: LogLine[] = [];
    // Subscribe first so nothing falls between the history and the live tail.
    const unsubscribe = subscribeLogs(model, (line) => {
      if (cancelled) return;
      if (!loaded) early.push(line);
      else setLines((prev) => mergeLogLines(prev, [line], MAX_LOG_LINES));
    });
    getLogs(model, 200).then(
      (initial) => {
        if (cancelled) return;
        loaded = true;
        setLines(mergeLogLines(initial, early, MAX_LOG_LINES));
      },
      (err: unknown) => {
        if (cancelled) return;
        loaded = true;
        setError(errorMessage(err));
        setLines(mergeLogLines([], early, MAX_LOG_LINES));
      },
    );
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [model, subscribeLogs]);

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return lines.filter(
      (l) => (!showStderrOnly || l.stream === "stderr") && (!f || l.line.toLowerCase().includes(f)),
    );
  }, [lines, filter, showStderrOnly]);

  useEffect(() => {
    const box = boxRef.current;
    if (follow && box) box.scrollTop = box.scrollHeight;
  }, [shown, follow]);

  return (
    <div className="logview">
      <div className="row gap-m wrap toolbar">
        <input
          type="search"
          placeholder="filter lines"
          aria-label="filter log lines"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        <label className="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} />
          follow
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={showStderrOnly}
            onChange={(e) => setStderrOnly(e.target.checked)}
          />
          stderr only
        </label>
        <button type="button" className="btn btn-s" onClick={() => setLines([])}>
          Clear
        </button>
        <span className="muted small">
          {shown.length} of {lines.length} lines
        </span>
      </div>
      {error ? <p className="text-bad small">{error}</p> : null}
      <div className="logbox" ref={boxRef} data-testid="log-lines" role="log" aria-live="polite">
        {shown.length === 0 ? (
          <div className="muted">No log lines yet.</div>
        ) : (
          shown.map((l, i) => (
            <div key={i} className={`logline stream-${l.stream}`}>
              <span className="log-ts">{formatClock(l.ts)}</span>
              <span className="log-stream">{l.stream}</span>
              <span className="log-text">{l.line}</span>
            </div>
          ))
        )}
      </div>
    </div>
  );
}
