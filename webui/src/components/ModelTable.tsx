import { Link } from "react-router-dom";
import type { ModelInfo, ThroughputRate } from "../api/types";
import type { ModelAction } from "../hooks/useModelActions";
import { useNow } from "../hooks/useNow";
import { formatDuration, formatRate } from "../lib/format";
import { ModelButtons } from "./ModelButtons";
import { liveUptime, loadElapsed } from "../lib/loadElapsed";
import { ModelStatus } from "./ModelStatus";
import { hasServing } from "../lib/serving";
import { ServingChips } from "./ServingChips";

interface Props {
  models: ModelInfo[];
  seenAt: Record<string, number>;
  rates?: Record<string, ThroughputRate>;
  pending: ReadonlySet<string>;
  onAction: (action: ModelAction, name: string) => void;
  selected?: ReadonlySet<string>;
  onSelect?: (name: string, on: boolean) => void;
  onSelectAll?: (on: boolean) => void;
  activeName?: string;
}

/** Models with their state and Start/Stop buttons; rows become cards on phones. */
export function ModelTable(props: Props) {
  const { models, seenAt, rates, pending, onAction, selected, onSelect, onSelectAll, activeName } =
    props;
  const anyStarting = models.some((m) => m.state === "starting");
  const anyReady = models.some((m) => m.state === "ready");
  // A local clock for load progress (every second) and uptimes (every 5 s).
  const now = useNow(anyStarting || anyReady, anyStarting ? 1000 : 5000);
  const selectable = Boolean(selected && onSelect);
  const allSelected = selectable && models.length > 0 && models.every((m) => selected?.has(m.name));

  if (models.length === 0) return <p className="muted empty">No models configured.</p>;

  return (
    <table className="table rtable" data-testid="model-table">
      <thead>
        <tr>
          <th>
            {selectable ? (
              <input
                type="checkbox"
                className="row-check"
                aria-label="select all models"
                checked={allSelected}
                onChange={(e) => onSelectAll?.(e.target.checked)}
              />
            ) : null}
            Model
          </th>
          <th className="col-opt">Mode</th>
          <th>State</th>
          <th>Load</th>
          <th className="col-opt">Uptime</th>
          <th className="col-actions">
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {models.map((m) => {
          const rate = rates?.[m.name];
          const serving = hasServing(m);
          const rowClass = [activeName === m.name ? "active" : "", serving ? "has-serving" : ""]
            .filter(Boolean)
            .join(" ");
          return [
            <tr
              key={m.name}
              data-testid={`model-row-${m.name}`}
              data-state={m.state}
              className={rowClass || undefined}
            >
              <td data-label="Model" className="cell-name">
                <span className="name-line">
                  {selectable ? (
                    <input
                      type="checkbox"
                      className="row-check"
                      aria-label={`select ${m.name}`}
                      checked={selected?.has(m.name) ?? false}
                      onChange={(e) => onSelect?.(m.name, e.target.checked)}
                    />
                  ) : null}
                  <Link to={`/models/${encodeURIComponent(m.name)}`} className="model-link">
                    {m.name}
                  </Link>
                </span>
                {m.aliases.length ? (
                  <span className="muted small block">aka {m.aliases.join(", ")}</span>
                ) : null}
              </td>
              <td data-label="Mode" className="col-opt">
                <span className="tag">{m.mode}</span>
              </td>
              <td data-label="State">
                <ModelStatus model={m} elapsedS={loadElapsed(m, seenAt[m.name], now)} />
              </td>
              <td data-label="Load" className="small">
                <LoadCell inFlight={m.in_flight} queued={m.queued} rate={rate} />
              </td>
              <td data-label="Uptime" className="small col-opt">
                {m.state === "ready" ? formatDuration(liveUptime(m, seenAt[m.name], now)) : "–"}
              </td>
              <td className="col-actions">
                <ModelButtons model={m} busy={pending.has(m.name)} onAction={onAction} />
              </td>
            </tr>,
            serving ? (
              <tr
                key={`${m.name}/serving`}
                className={`serving-row${activeName === m.name ? " active" : ""}`}
              >
                <td colSpan={6} className="col-serving">
                  <ServingChips model={m} seenAt={seenAt[m.name]} />
                </td>
              </tr>
            ) : null,
          ];
        })}
      </tbody>
    </table>
  );
}

function LoadCell({
  inFlight,
  queued,
  rate,
}: {
  inFlight: number;
  queued: number;
  rate: ThroughputRate | undefined;
}) {
  const busy = inFlight > 0 || queued > 0;
  const tokens = rate?.tokens_per_s ?? 0;
  if (!busy && tokens <= 0) return <span className="muted">idle</span>;
  return (
    <span className="load-cell">
      {busy ? (
        <span>
          {inFlight} running{queued ? ` · ${queued} queued` : ""}
        </span>
      ) : null}
      {tokens > 0 ? <span>{formatRate(tokens)} tok/s</span> : null}
    </span>
  );
}
