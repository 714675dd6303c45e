/** Badge colours reuse the model-state ones: green done, amber running, red failed, grey stopped. */
const CLASSES: Record<string, string> = {
  validating: "state-starting",
  in_progress: "state-starting",
  finalizing: "state-starting",
  cancelling: "state-stopping",
  completed: "state-ready",
  failed: "state-failed",
  expired: "state-failed",
  cancelled: "state-stopped",
};

export function BatchStatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge ${CLASSES[status] ?? "state-other"}`} data-status={status}>
      <span className="dot" aria-hidden="true" />
      {status.replace(/_/g, " ")}
    </span>
  );
}
