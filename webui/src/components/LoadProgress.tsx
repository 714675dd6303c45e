import { formatDuration, percent } from "../lib/format";

/** Progress of a model load: elapsed seconds against the start timeout. */
export function LoadProgress({ elapsedS, timeoutS }: { elapsedS: number; timeoutS: number }) {
  const pct = timeoutS > 0 ? percent(elapsedS, timeoutS) : 0;
  return (
    <div
      className="load-progress"
      title={`loading: ${elapsedS.toFixed(0)} s of ${timeoutS} s timeout`}
    >
      <div
        className="progress"
        role="progressbar"
        aria-label="load progress"
        aria-valuemin={0}
        aria-valuemax={timeoutS}
        aria-valuenow={Math.round(elapsedS)}
      >
        <div className="progress-fill indeterminate" style={{ width: `${Math.max(pct, 4)}%` }} />
      </div>
      <span className="muted small">
        loading {formatDuration(elapsedS)}
        {timeoutS > 0 ? ` / ${formatDuration(timeoutS)} timeout` : ""}
      </span>
    </div>
  );
}
