import type { ModelInfo } from "../api/types";
import { LoadProgress } from "./LoadProgress";
import { StateBadge } from "./StateBadge";

/** State badge plus, while loading, a progress bar with elapsed seconds. */
export function ModelStatus({ model, elapsedS }: { model: ModelInfo; elapsedS: number | null }) {
  return (
    <div className="model-status">
      <StateBadge state={model.state} elapsedS={elapsedS} />
      {model.state === "starting" && elapsedS != null ? (
        <LoadProgress elapsedS={elapsedS} timeoutS={model.start_timeout_s} />
      ) : null}
      {model.state === "failed" && model.last_error ? (
        <span className="small text-bad ellipsis" title={model.last_error}>
          {model.last_error}
        </span>
      ) : null}
    </div>
  );
}
