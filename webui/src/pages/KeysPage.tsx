import { useState } from "react";
import { errorMessage, listKeys, revokeKey } from "../api/client";
import type { ApiKey, CreatedKey } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { KeyCreateForm } from "../components/KeyCreateForm";
import { KeySecret } from "../components/KeySecret";
import { KeyTable } from "../components/KeyTable";
import { useAsync } from "../hooks/useAsync";
import { useLive } from "../state/liveContext";

export function KeysPage() {
  const { state } = useLive();
  const keys = useAsync(listKeys);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const onCreated = (k: CreatedKey) => {
    setCreated(k);
    void keys.reload();
  };

  const onRevoke = async (k: ApiKey) => {
    if (!window.confirm(`Revoke key “${k.name}” (${k.prefix}…)? Clients using it stop working.`))
      return;
    setBusyId(k.id);
    setError(null);
    try {
      await revokeKey(k.id);
      await keys.reload();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusyId(null);
    }
  };

  return (
    <div className="page">
      <h1 className="page-title">API keys</h1>
      <p className="muted small">
        Keys for the OpenAI-compatible endpoints under <code>/v1</code>. Clients send them as{" "}
        <code>Authorization: Bearer sk-…</code>.
      </p>
      {created ? <KeySecret created={created} onDone={() => setCreated(null)} /> : null}
      <ErrorBanner
        message={error ?? keys.error}
        onClose={error ? () => setError(null) : undefined}
      />
      <div className="grid grid-keys">
        <section className="card" aria-label="keys">
          {keys.loading && !keys.data ? <p className="muted">Loading…</p> : null}
          {keys.data ? <KeyTable keys={keys.data} busyId={busyId} onRevoke={onRevoke} /> : null}
          {keys.data === null ? (
            <p className="muted" data-testid="keys-disabled">
              API key management is not enabled on this server.
            </p>
          ) : null}
        </section>
        {keys.data !== null ? (
          <KeyCreateForm
            modelNames={state.models.map((m) => m.name)}
            onCreated={onCreated}
            firstKey={keys.data !== undefined && !keys.data.some((k) => !k.revoked)}
          />
        ) : null}
      </div>
    </div>
  );
}
