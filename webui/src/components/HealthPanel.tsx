import { getHealth, getInfo } from "../api/client";
import type { Health } from "../api/types";
import { useAsync } from "../hooks/useAsync";
import { useNow } from "../hooks/useNow";
import { formatDuration } from "../lib/format";
import { useLive } from "../state/liveContext";
import { ConnectionBadge } from "./ConnectionBadge";

interface TimedHealth extends Health {
  readAt: number;
}

const readHealth = async (): Promise<TimedHealth> => ({
  ...(await getHealth()),
  readAt: Date.now(),
});

/** Server health and identity, read once when the page opens (uptime then ticks locally). */
export function HealthPanel() {
  const health = useAsync(readHealth);
  const now = useNow(Boolean(health.data));
  const uptime = health.data
    ? health.data.uptime_s + Math.max(0, now - health.data.readAt) / 1000
    : null;
  const info = useAsync(getInfo);
  const { state } = useLive();
  const ready = state.models.filter((m) => m.state === "ready").length;
  const online = state.devices.filter((d) => d.online).length;
  const ok = health.data?.status === "ok";

  return (
    <section className="card" aria-labelledby="health-title">
      <header className="card-head">
        <h2 id="health-title" className="card-title">
          System health
        </h2>
        <ConnectionBadge />
      </header>
      <div className="stats stats-wide">
        <div>
          <span className="stat-label">Server</span>
          <span
            className={`stat-value ${health.error ? "text-bad" : ok ? "text-good" : ""}`}
            data-testid="health"
          >
            {health.error ? "unreachable" : health.data ? health.data.status : "…"}
          </span>
        </div>
        <div>
          <span className="stat-label">Version</span>
          <span className="stat-value">{health.data?.version ?? info.data?.version ?? "–"}</span>
        </div>
        <div>
          <span className="stat-label">Uptime</span>
          <span className="stat-value">{formatDuration(uptime)}</span>
        </div>
        <div>
          <span className="stat-label">Models ready</span>
          <span className="stat-value">
            {ready} <span className="muted">/ {state.models.length}</span>
          </span>
        </div>
        <div>
          <span className="stat-label">Devices online</span>
          <span className="stat-value">
            {online} <span className="muted">/ {state.devices.length}</span>
          </span>
        </div>
        <div>
          <span className="stat-label">API keys</span>
          <span className="stat-value">
            {info.data ? (info.data.auth_required ? "required" : "not required") : "–"}
          </span>
        </div>
      </div>
      {info.data ? (
        <p className="muted small">
          {info.data.host}:{info.data.port} · config {info.data.config_path ?? "built-in demo"}
        </p>
      ) : null}
      {health.error ? <p className="small text-bad">{health.error}</p> : null}
    </section>
  );
}
