import { formatDuration } from "../lib/format";

const LABELS: Record<string, string> = {
  ready: "Ready",
  starting: "Starting",
  stopping: "Stopping",
  stopped: "Stopped",
  failed: "Failed",
};

export function StateBadge({ state, elapsedS }: { state: string; elapsedS?: number | null }) {
  const label = LABELS[state] ?? state;
  const showElapsed = state === "starting" && elapsedS != null;
  return (
    <span className={`badge state-${state in LABELS ? state : "other"}`} data-state={state}>
      <span className="dot" aria-hidden="true" />
      {label}
      {showElapsed ? ` ${formatDuration(elapsedS)}` : null}
    </span>
  );
}
