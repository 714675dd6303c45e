import type { DeviceModelUse } from "../api/types";
import { colorFor } from "../lib/colors";
import { formatMb, percent } from "../lib/format";

interface Props {
  total: number;
  used: number;
  models: DeviceModelUse[];
}

/** Device memory bar: one coloured segment per model, grey for other use. */
export function MemoryBar({ total, used, models }: Props) {
  const modelMb = models.reduce((sum, m) => sum + Math.max(0, m.memory_mb), 0);
  const other = Math.max(0, used - modelMb);
  return (
    <div className="membar-wrap">
      <div
        className="membar"
        role="img"
        aria-label={`${formatMb(used)} of ${formatMb(total)} used`}
      >
        {models.map((m) => (
          <div
            key={m.model}
            className="membar-seg"
            style={{ width: `${percent(m.memory_mb, total)}%`, background: colorFor(m.model) }}
            title={`${m.model}: ${formatMb(m.memory_mb)}`}
          />
        ))}
        {other > 0 ? (
          <div
            className="membar-seg membar-other"
            style={{ width: `${percent(other, total)}%` }}
            title={`other: ${formatMb(other)}`}
          />
        ) : null}
      </div>
      {models.length > 0 ? (
        <ul className="legend">
          {models.map((m) => (
            <li key={m.model}>
              <span className="swatch" style={{ background: colorFor(m.model) }} />
              {m.model} <span className="muted">{formatMb(m.memory_mb)}</span>
            </li>
          ))}
          {other > 0 ? (
            <li>
              <span className="swatch membar-other" />
              other <span className="muted">{formatMb(other)}</span>
            </li>
          ) : null}
        </ul>
      ) : null}
    </div>
  );
}
