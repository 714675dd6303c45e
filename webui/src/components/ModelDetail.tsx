import { Link } from "react-router-dom";
import type { ConfigDocument } from "../api/client";
import type { ModelInfo } from "../api/types";
import type { ModelAction } from "../hooks/useModelActions";
import { useNow } from "../hooks/useNow";
import { formatDuration, formatTime } from "../lib/format";
import { ConfigPanel } from "./ConfigPanel";
import { ModelButtons } from "./ModelButtons";
import { liveUptime, loadElapsed } from "../lib/loadElapsed";
import { ModelMemory } from "./ModelMemory";
import { ModelStatus } from "./ModelStatus";
import { PlanPanel } from "./PlanPanel";
import { hasServing } from "../lib/serving";
import { ServingTable } from "./ServingTable";

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
    ["Port", m.port == null ? "–" : String(m.port)],
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
  const serving = hasServing(m);
  if (serving) {
    const limits = `min ${m.min_instances ?? 0}, max ${m.max_instances ?? 1}`;
    const counts = stateCounts(m.instances ?? []);
    facts.push(["Instances", counts ? `${counts} (${limits})` : "none: served by upstreams only"]);
  }
  if (m.fallbacks?.length) facts.push(["Fallbacks", m.fallbacks.join(" → ")]);
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
      {serving ? (
        <section className="subcard" aria-labelledby="serving-title">
          <h3 id="serving-title" className="card-title">
            Instances &amp; upstreams
          </h3>
          <ServingTable model={m} seenAt={seenAt} />
        </section>
      ) : null}
      <ModelMemory model={m} />
      <p>
        <Link to={`/logs/${encodeURIComponent(m.name)}`}>Open live logs →</Link>
      </p>
      <PlanPanel model={m.name} running={m.state === "ready" || m.state === "starting"} />
      <ConfigPanel model={m.name} doc={config} error={configError} />
    </section>
  );
}

/** "2 ready · 1 starting", in the order the states first appear. */
function stateCounts(instances: { state: string }[]): string {
  const counts = new Map<string, number>();
  for (const i of instances) counts.set(i.state, (counts.get(i.state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(" · ");
}
