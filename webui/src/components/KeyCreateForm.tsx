import { useState, type FormEvent } from "react";
import { createKey, errorMessage } from "../api/client";
import type { CreatedKey } from "../api/types";

interface Props {
  modelNames: string[];
  onCreated: (key: CreatedKey) => void;
  /** true when no active key exists yet: the first one turns on key checks for /v1 */
  firstKey?: boolean;
}

export function KeyCreateForm({ modelNames, onCreated, firstKey = false }: Props) {
  const [name, setName] = useState("");
  const [models, setModels] = useState<ReadonlySet<string>>(new Set());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const toggle = (m: string, on: boolean) =>
    setModels((prev) => {
      const next = new Set(prev);
      if (on) next.add(m);
      else next.delete(m);
      return next;
    });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const created = await createKey(name.trim(), [...models]);
      setName("");
      setModels(new Set());
      onCreated(created);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form" onSubmit={submit} aria-labelledby="newkey-title">
      <h2 id="newkey-title" className="card-title">
        Create a key
      </h2>
      <label htmlFor="key-name">Name</label>
      <input
        id="key-name"
        value={name}
        onChange={(e) => setName(e.target.value)}
        placeholder="e.g. notebook, ci, alice"
        maxLength={100}
      />
      {modelNames.length ? (
        <fieldset>
          <legend className="small">Limit to models (none ticked = all models)</legend>
          <div className="row wrap gap-m">
            {modelNames.map((m) => (
              <label key={m} className="check">
                <input
                  type="checkbox"
                  checked={models.has(m)}
                  onChange={(e) => toggle(m, e.target.checked)}
                />
                {m}
              </label>
            ))}
          </div>
        </fieldset>
      ) : null}
      {firstKey ? (
        <p className="banner banner-warn small" data-testid="first-key-warning">
          <span>
            No key exists yet, so <code>/v1</code> is open. Once a key exists, every{" "}
            <code>/v1</code> request must send one.
          </span>
        </p>
      ) : null}
      {error ? <p className="text-bad small">{error}</p> : null}
      <div>
        <button type="submit" className="btn btn-primary" disabled={busy || !name.trim()}>
          {busy ? "Creating…" : "Create key"}
        </button>
      </div>
    </form>
  );
}
