import { useLive } from "../state/liveContext";

/** Shows whether the live event stream is connected. */
export function ConnectionBadge() {
  const { status, retryInMs, attempts } = useLive();
  let label = "Live";
  let title = "Connected to the manager's event stream";
  if (status === "connecting") {
    label = "Connecting…";
    title = "Opening the event stream";
  } else if (status === "reconnecting") {
    label = "Offline";
    title = `Event stream lost; retry ${attempts} in ${((retryInMs ?? 0) / 1000).toFixed(1)} s`;
  }
  return (
    <span
      className={`conn conn-${status}`}
      title={title}
      data-testid="connection"
      data-status={status}
    >
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}
