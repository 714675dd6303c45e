import { Link } from "react-router-dom";
import type { ModelInfo, ThroughputRate } from "../api/types";
import type { ModelAction } from "../hooks/useModelActions";
import { useNow } from "../hooks/useNow";
import { formatDuration, formatRate } from "../lib/format";
import { ModelButtons } from "./ModelButtons";
import { loadElapsed, ModelStatus } from "./ModelStatus";

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
  const now = useNow(anyStarting);
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
          <th>Mode</th>
          <th>State</th>
          <th>Load</th>
          <th>Uptime</th>
          <th className="col-actions">
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {models.map((m) => {
          const rate = rates?.[m.name];
          return (
            <tr
              key={m.name}
              data-testid={`model-row-${m.name}`}
              data-state={m.state}
              className={activeName === m.name ? "active" : undefined}
            >
              <td data-label="Model" className="cell-name">
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
                {m.aliases.length ? (
                  <span className="muted small block">aka {m.aliases.join(", ")}</span>
                ) : null}
              </td>
              <td data-label="Mode">
                <span className="tag">{m.mode}</span>
              </td>
              <td data-label="State">
                <ModelStatus model={m} elapsedS={loadElapsed(m, seenAt[m.name], now)} />
              </td>
              <td data-label="Load" className="small">
                {m.in_flight} in flight · {m.queued} queued
                {rate && (rate.requests_per_s > 0 || rate.tokens_per_s > 0) ? (
                  <span className="muted block">{formatRate(rate.tokens_per_s)} tok/s</span>
                ) : null}
              </td>
              <td data-label="Uptime" className="small">
                {m.state === "ready" ? formatDuration(m.uptime_s) : "–"}
              </td>
              <td className="col-actions">
                <ModelButtons model={m} busy={pending.has(m.name)} onAction={onAction} />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
