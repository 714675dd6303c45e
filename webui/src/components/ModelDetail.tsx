import { Link } from "react-router-dom";
import type { ConfigDocument } from "../api/client";
import type { ModelInfo } from "../api/types";
import type { ModelAction } from "../hooks/useModelActions";
import { useNow } from "../hooks/useNow";
import { formatDuration, formatTime } from "../lib/format";
import { ConfigPanel } from "./ConfigPanel";
import { ModelButtons } from "./ModelButtons";
import { liveUptime, loadElapsed } from "../lib/loadElapsed";
import { ModelStatus } from "./ModelStatus";
import { PlanPanel } from "./PlanPanel";

interface Props {
  model: ModelInfo;
  seenAt: number | undefined;
  config: ConfigDocument | undefined;
  configError: string | null;
  busy: boolean;
  onAction: (action: ModelAction, name: string) => void;
  onClose: () => void;
}

export function ModelDetail({
  model: m,
  seenAt,
  config,
  configError,
  busy,
  onAction,
  onClose,
}: Props) {
  const now = useNow(m.state === "starting" || m.state === "ready");
  const facts: [string, string][] = [
    ["Mode", m.mode],
    ["Port", String(m.port)],
    ["PID", m.pid == null ? "–" : String(m.pid)],
    ["Profile", m.profile ?? "–"],
    ["Profiles", m.profiles.length ? m.profiles.join(", ") : "–"],
    ["Aliases", m.aliases.length ? m.aliases.join(", ") : "–"],
    ["Auto start", m.auto_start ? "yes" : "no"],
    ["Idle stop after", m.ttl_s > 0 ? formatDuration(m.ttl_s) : "never"],
    ["Start timeout", formatDuration(m.start_timeout_s)],
    ["Uptime", m.state === "ready" ? formatDuration(liveUptime(m, seenAt, now)) : "–"],
    ["Last used", formatTime(m.last_used)],
    ["Restarts", String(m.restarts)],
    ["In flight / queued", `${m.in_flight} / ${m.queued}`],
  ];
  return (
    <section className="card detail" aria-labelledby="detail-title" data-testid="model-detail">
      <header className="card-head">
        <div>
          <h2 id="detail-title" className="card-title">
            {m.name}
          </h2>
          <ModelStatus model={m} elapsedS={loadElapsed(m, seenAt, now)} />
        </div>
        <div className="row gap-s">
          <ModelButtons model={m} busy={busy} onAction={onAction} />
          <button
            type="button"
            className="btn btn-s btn-ghost"
            onClick={onClose}
            aria-label="close details"
          >
            ✕
          </button>
        </div>
      </header>
      {m.last_error ? (
        <p className="banner banner-error small">
          <span>Last error: {m.last_error}</span>
        </p>
      ) : null}
      <dl className="kv">
        {facts.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      <p>
        <Link to={`/logs/${encodeURIComponent(m.name)}`}>Open live logs →</Link>
      </p>
      <PlanPanel model={m.name} running={m.state === "ready" || m.state === "starting"} />
      <ConfigPanel model={m.name} doc={config} error={configError} />
    </section>
  );
}
