import type { ModelInfo } from "../api/types";
import { formatOver, memoryRows } from "../lib/memory";

/** Declared vs measured memory of the model's profile: what the config says, what the devices saw it hold, and
 * what placement reserves (the larger). Hidden for servers that do not report footprints. */
export function ModelMemory({ model: m }: { model: ModelInfo }) {
  if (m.memory_declared_mb === undefined) return null;
  const rows = memoryRows({
    memory_declared_mb: m.memory_declared_mb,
    memory_measured_mb: m.memory_measured_mb ?? null,
  });
  const others = Object.keys(m.memory_profiles ?? {}).filter((p) => p !== m.memory_profile);
  return (
    <section className="subcard" aria-labelledby="memory-title" data-testid="model-memory">
      <h3 id="memory-title" className="card-title">
        Memory{m.memory_profile ? ` (profile ${m.memory_profile})` : ""}
      </h3>
      {rows.length === 0 ? (
        <p className="muted small">This profile declares no device memory.</p>
      ) : (
        <table className="table compact" data-testid="memory-table">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Declared</th>
              <th scope="col">Measured</th>
              <th scope="col">Reserved</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.device} data-device={r.device} data-warn={r.warn ? "yes" : "no"}>
                <th scope="row">{r.device}</th>
                <td>{r.declaredMb} MB</td>
                <td className={r.warn ? "text-warn" : undefined}>
                  {r.measuredMb == null ? (
                    <span
                      className="muted"
                      title="measured once the model has run with this profile"
                    >
                      not yet
                    </span>
                  ) : (
                    `${r.measuredMb} MB ${formatOver(r.overPct) ? `(${formatOver(r.overPct)})` : ""}`.trim()
                  )}
                </td>
                <td>{r.reservedMb} MB</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {rows.some((r) => r.warn) ? (
        <p className="banner banner-warn small" data-testid="memory-warning">
          It holds more than its <code>memory_mb</code> declares: placement reserves the measured
          memory.
        </p>
      ) : null}
      {others.length ? <p className="muted small">Other profiles: {others.join(", ")}.</p> : null}
    </section>
  );
}
