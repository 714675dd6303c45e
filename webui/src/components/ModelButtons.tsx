import type { ModelInfo } from "../api/types";
import type { ModelAction } from "../hooks/useModelActions";

interface Props {
  model: ModelInfo;
  busy: boolean;
  onAction: (action: ModelAction, name: string) => void;
}

/** Start / Stop for one model; the button offered follows its state. */
export function ModelButtons({ model, busy, onAction }: Props) {
  // served by remote upstreams alone: nothing here to start or stop
  if (model.max_instances === 0 && !model.instances?.length) {
    return (
      <span className="muted small nowrap" data-testid={`remote-${model.name}`}>
        remote only
      </span>
    );
  }
  const running = model.state === "ready" || model.state === "starting";
  const stopping = model.state === "stopping";
  return (
    <div className="row gap-s nowrap">
      {running || stopping ? (
        <button
          type="button"
          className="btn btn-s"
          disabled={busy || stopping}
          onClick={() => onAction("stop", model.name)}
          aria-label={`Stop ${model.name}`}
          data-testid={`stop-${model.name}`}
        >
          {busy ? "…" : "Stop"}
        </button>
      ) : (
        <button
          type="button"
          className="btn btn-primary btn-s"
          disabled={busy}
          onClick={() => onAction("start", model.name)}
          aria-label={`Start ${model.name}`}
          data-testid={`start-${model.name}`}
        >
          {busy ? "…" : model.state === "failed" ? "Retry" : "Start"}
        </button>
      )}
    </div>
  );
}
