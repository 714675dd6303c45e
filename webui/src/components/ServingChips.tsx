import type { InstanceInfo, ModelInfo, UpstreamInfo } from "../api/types";
import { useNow } from "../hooks/useNow";
import {
  coolingLeft,
  formatCountdown,
  instanceLabel,
  instanceTitle,
  instanceWhere,
  upstreamHealth,
  upstreamTitle,
} from "../lib/serving";

const KNOWN_STATES = new Set(["ready", "starting", "stopping", "stopped", "failed"]);

/**
 * One line of chips under a model row: how many instances are ready, a chip per instance that is not
 * stopped and per upstream (state colour, requests running, cool-down countdown, details and error on hover),
 * then the fallbacks. Shown only for scaled-out models; stopped instances are counted, not drawn.
 */
export function ServingChips({
  model: m,
  seenAt,
}: {
  model: ModelInfo;
  seenAt: number | undefined;
}) {
  const instances = m.instances ?? [];
  const upstreams = m.upstreams ?? [];
  const cooling = upstreams.some((u) => u.cooling_s > 0);
  const now = useNow(cooling, 1000);
  const max = m.max_instances ?? Math.max(1, instances.length);
  const ready = instances.filter((i) => i.state === "ready").length;
  return (
    <div
      className="serving"
      data-testid={`serving-${m.name}`}
      role="group"
      aria-label={`instances and upstreams of ${m.name}`}
    >
      {max > 1 || instances.length > 1 ? (
        <span className="serving-sum" data-testid="serving-sum">
          {ready}/{max} ready
        </span>
      ) : null}
      {instances
        .filter((i) => i.state !== "stopped")
        .map((i) => (
          <InstanceChip key={i.id} inst={i} />
        ))}
      {upstreams.map((u) => (
        <UpstreamChip key={u.id} up={u} coolingS={coolingLeft(u, seenAt, now)} />
      ))}
      {m.fallbacks?.length ? (
        <span className="serving-fallbacks" data-testid="serving-fallbacks">
          fallback → {m.fallbacks.join(", ")}
        </span>
      ) : null}
    </div>
  );
}

function InstanceChip({ inst: i }: { inst: InstanceInfo }) {
  const where = instanceWhere(i);
  return (
    <span
      className={`chip is-${KNOWN_STATES.has(i.state) ? i.state : "other"}`}
      data-testid="serving-chip"
      data-kind="instance"
      data-id={i.id}
      data-state={i.state}
      data-in-flight={i.in_flight}
      title={instanceTitle(i)}
    >
      <span className="dot" aria-hidden="true" />
      <span className="chip-name">{instanceLabel(i)}</span>
      {where ? <span className="chip-where">{where}</span> : null}
      {i.state !== "ready" ? <span className="chip-note">{i.state}</span> : null}
      {i.in_flight > 0 ? <span className="chip-count">{i.in_flight} running</span> : null}
    </span>
  );
}

function UpstreamChip({ up: u, coolingS }: { up: UpstreamInfo; coolingS: number }) {
  const health = upstreamHealth(u, coolingS);
  return (
    <span
      className={`chip is-${health}`}
      data-testid="serving-chip"
      data-kind="upstream"
      data-id={u.id}
      data-state={health}
      data-in-flight={u.in_flight}
      title={upstreamTitle(u, health, coolingS)}
    >
      <span className="dot" aria-hidden="true" />
      <span className="chip-name">
        <span aria-hidden="true">↗ </span>
        {u.id}
      </span>
      {health === "cooling" ? (
        <span className="chip-note" data-testid="cooling">
          cooling {formatCountdown(coolingS)}
        </span>
      ) : null}
      {health === "down" ? <span className="chip-note">down</span> : null}
      {u.in_flight > 0 ? <span className="chip-count">{u.in_flight} running</span> : null}
    </span>
  );
}
