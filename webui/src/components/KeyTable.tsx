import type { ApiKey } from "../api/types";
import { formatTime } from "../lib/format";

interface Props {
  keys: ApiKey[];
  busyId: string | null;
  onRevoke: (key: ApiKey) => void;
}

export function KeyTable({ keys, busyId, onRevoke }: Props) {
  if (keys.length === 0) return <p className="muted empty">No API keys yet.</p>;
  return (
    <table className="table rtable" data-testid="key-table">
      <thead>
        <tr>
          <th>Name</th>
          <th>Key</th>
          <th>Models</th>
          <th>Created</th>
          <th>Status</th>
          <th className="col-actions">
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {keys.map((k) => (
          <tr key={k.id} className={k.revoked ? "revoked" : undefined}>
            <td data-label="Name" className="cell-name">
              <strong>{k.name}</strong>
            </td>
            <td data-label="Key" className="mono nowrap">
              {k.prefix ? `${k.prefix}…` : <span className="muted">(in config file)</span>}
            </td>
            <td data-label="Models">{k.models.length ? k.models.join(", ") : "all"}</td>
            <td data-label="Created">{formatTime(k.created_at)}</td>
            <td data-label="Status">
              {k.revoked ? (
                <span className="badge state-stopped">revoked</span>
              ) : (
                <span className="badge state-ready">active</span>
              )}
            </td>
            <td className="col-actions">
              {k.revoked || k.source === "config" ? null : (
                <button
                  type="button"
                  className="btn btn-danger btn-s"
                  disabled={busyId === k.id}
                  onClick={() => onRevoke(k)}
                  aria-label={`Revoke ${k.name}`}
                >
                  Revoke
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
