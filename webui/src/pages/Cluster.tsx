import { useEffect } from "react";
import { getCluster } from "../api/client";
import type { ClusterNode } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { StateBadge } from "../components/StateBadge";
import { useAsync } from "../hooks/useAsync";
import { formatDuration, formatMb, formatTime } from "../lib/format";

const REFRESH_MS = 2000; // as often as the nodes beat

function NodeRow({ node }: { node: ClusterNode }) {
  return (
    <tr data-testid={`node-${node.name}`} className={node.up ? undefined : "revoked"}>
      <td data-label="Node" className="cell-name">
        <strong>{node.name}</strong>
        {node.self ? <span className="muted small"> (this node)</span> : null}
        <div className="muted small mono">{node.url}</div>
      </td>
      <td data-label="Status">
        {node.up ? (
          <span className="badge state-ready" data-up="true">
            up
          </span>
        ) : (
          <span className="badge state-failed" data-up="false">
            down
          </span>
        )}
        <div className="muted small">
          seen {formatDuration(node.seen_s_ago)} ago · since {formatTime(node.started_at)}
        </div>
      </td>
      <td data-label="Devices">
        {node.devices.length === 0 ? <span className="muted">none</span> : null}
        {node.devices.map((d) => (
          <div key={d.name} className="small">
            <span className="mono">{d.name}</span>{" "}
            {d.online ? `${formatMb(d.free_mb)} free of ${formatMb(d.total_mb)}` : "offline"}
          </div>
        ))}
      </td>
      <td data-label="Models">
        {node.models.length === 0 ? <span className="muted">none</span> : null}
        {node.models.map((m) => (
          <div key={m.name} className="small" data-testid={`node-model-${node.name}-${m.name}`}>
            <span className="mono">{m.name}</span> <StateBadge state={m.state} />
            {m.instances.length > 1 ? (
              <span className="muted">
                {" "}
                {m.instances.filter((i) => i.state === "ready").length}/{m.instances.length}{" "}
                instances
              </span>
            ) : null}
            {m.in_flight ? <span className="muted"> · {m.in_flight} in flight</span> : null}
          </div>
        ))}
      </td>
    </tr>
  );
}

/** The managers sharing one database: who is up, their devices' free memory and their models. */
export function ClusterPage() {
  const cluster = useAsync(getCluster);
  const { reload } = cluster;
  useEffect(() => {
    const timer = window.setInterval(() => void reload(), REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [reload]);
  const nodes = cluster.data?.nodes ?? [];
  const up = nodes.filter((n) => n.up).length;
  return (
    <div className="page">
      <h1 className="page-title">Cluster</h1>
      <p className="muted small">
        Managers sharing this one&apos;s database (<code>program.database_url</code>). Any of them
        serves the models of every node that is up; a node not seen for three heartbeats is down and
        no longer routed to.
      </p>
      <ErrorBanner message={cluster.error} />
      <section className="card" aria-label="nodes">
        {cluster.loading && !cluster.data ? <p className="muted">Loading…</p> : null}
        {cluster.data && nodes.length === 0 ? (
          <p className="muted empty" data-testid="cluster-empty">
            No cluster: this manager keeps no usage store, so no other node can see it.
          </p>
        ) : null}
        {nodes.length ? (
          <>
            <p className="small" data-testid="cluster-summary">
              {up} of {nodes.length} nodes up
            </p>
            <table className="table rtable" data-testid="cluster-table">
              <thead>
                <tr>
                  <th>Node</th>
                  <th>Status</th>
                  <th>Devices</th>
                  <th>Models</th>
                </tr>
              </thead>
              <tbody>
                {nodes.map((n) => (
                  <NodeRow key={n.name} node={n} />
                ))}
              </tbody>
            </table>
          </>
        ) : null}
      </section>
    </div>
  );
}
