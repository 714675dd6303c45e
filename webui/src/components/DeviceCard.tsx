import type { DeviceInfo } from "../api/types";
import { formatMb, formatNumber } from "../lib/format";
import { MemoryBar } from "./MemoryBar";

function tempClass(t: number | null): string {
  if (t == null) return "";
  if (t >= 85) return "text-bad";
  if (t >= 75) return "text-warn";
  return "";
}

export function DeviceCard({ device }: { device: DeviceInfo }) {
  const d = device;
  return (
    <article className={`card device ${d.online ? "" : "offline"}`} data-testid="device">
      <header className="card-head">
        <div>
          <h3 className="card-title">{d.name}</h3>
          <span className="muted small">
            {[d.device_type, d.memory_type, d.plugin].filter(Boolean).join(" · ")}
          </span>
        </div>
        {d.online ? (
          <span className="badge state-ready">
            <span className="dot" aria-hidden="true" />
            Online
          </span>
        ) : (
          <span className="badge state-failed" title={d.offline_reason}>
            <span className="dot" aria-hidden="true" />
            Offline
          </span>
        )}
      </header>
      {!d.online && d.offline_reason ? <p className="small text-bad">{d.offline_reason}</p> : null}
      <div className="stats">
        <div>
          <span className="stat-label">Memory</span>
          <span className="stat-value">
            {formatMb(d.used_memory_mb)}{" "}
            <span className="muted">/ {formatMb(d.total_memory_mb)}</span>
          </span>
        </div>
        <div>
          <span className="stat-label">Utilisation</span>
          <span className="stat-value">{formatNumber(d.usage_percentage, 0)}%</span>
        </div>
        <div>
          <span className="stat-label">Temperature</span>
          <span className={`stat-value ${tempClass(d.temperature_celsius)}`}>
            {d.temperature_celsius == null ? "n/a" : `${formatNumber(d.temperature_celsius, 0)} °C`}
          </span>
        </div>
        <div>
          <span className="stat-label">Free</span>
          <span className="stat-value">{formatMb(d.available_memory_mb)}</span>
        </div>
      </div>
      <MemoryBar total={d.total_memory_mb} used={d.used_memory_mb} models={d.models ?? []} />
    </article>
  );
}
