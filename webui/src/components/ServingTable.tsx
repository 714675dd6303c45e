import type { ModelInfo } from "../api/types";
import { useNow } from "../hooks/useNow";
import { formatDuration } from "../lib/format";
import {
  coolingLeft,
  formatCountdown,
  instanceLabel,
  instanceWhere,
  upstreamHealth,
  type UpstreamHealth,
} from "../lib/serving";
import { StateBadge } from "./StateBadge";

const HEALTH_CLASS: Record<UpstreamHealth, string> = {
  healthy: "state-ready",
  cooling: "state-starting",
  down: "state-failed",
};

/**
 * The detail panel's sub-table: every instance and upstream of a model, one row each, narrow enough for the
 * panel (where it runs and its error go on a second line under its name).
 */
export function ServingTable({
  model: m,
  seenAt,
}: {
  model: ModelInfo;
  seenAt: number | undefined;
}) {
  const instances = m.instances ?? [];
  const upstreams = m.upstreams ?? [];
  const cooling = upstreams.some((u) => u.cooling_s > 0);
  const now = useNow(true, cooling ? 1000 : 5000);
  const drift = seenAt ? Math.max(0, (now - seenAt) / 1000) : 0;
  return (
    <table className="table compact serving-table" data-testid="serving-table">
      <thead>
        <tr>
          <th>Instance</th>
          <th>State</th>
          <th className="num">Running</th>
        </tr>
      </thead>
      <tbody>
        {instances.map((i) => {
          const where = instanceWhere(i);
          return (
            <tr key={i.id} data-id={i.id} data-kind="instance">
              <td>
                <span className="mono strong">{instanceLabel(i)}</span>
                <span className="muted small block">
                  {where ? `${where} · ` : ""}port {i.port}
                  {i.pid != null ? ` · pid ${i.pid}` : ""}
                </span>
                <Err text={i.last_error} />
              </td>
              <td>
                <StateBadge state={i.state} />
                {i.state === "ready" && i.uptime_s != null ? (
                  <span className="muted small block">up {formatDuration(i.uptime_s + drift)}</span>
                ) : null}
              </td>
              <td className="num">{i.in_flight}</td>
            </tr>
          );
        })}
        {upstreams.map((u) => {
          const left = coolingLeft(u, seenAt, now);
          const health = upstreamHealth(u, left);
          return (
            <tr key={u.id} data-id={u.id} data-kind="upstream">
              <td>
                <span className="mono strong">↗ {u.id}</span>
                <span className="muted small block url-cell">
                  {u.url}
                  {u.weight !== 1 ? ` · weight ${u.weight}` : ""}
                </span>
                <Err text={u.last_error} />
              </td>
              <td>
                <span className={`badge ${HEALTH_CLASS[health]}`} data-state={health}>
                  <span className="dot" aria-hidden="true" />
                  {health === "cooling"
                    ? `Cooling ${formatCountdown(left)}`
                    : health === "healthy"
                      ? "Healthy"
                      : "Down"}
                </span>
                {u.failures ? (
                  <span className="muted small block">
                    {u.failures} failure{u.failures === 1 ? "" : "s"}
                  </span>
                ) : null}
              </td>
              <td className="num">{u.in_flight}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Err({ text }: { text: string | null }) {
  if (!text) return null;
  return (
    <span className="small text-bad block serving-err" title={text}>
      {text}
    </span>
  );
}
