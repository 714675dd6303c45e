import type { ConfigDocument } from "../api/client";

/** Finds a model's block in the config document, whatever its layout. */
export function findModelConfig(doc: ConfigDocument | undefined, name: string): unknown {
  if (!doc) return undefined;
  const direct = doc[name];
  if (direct && typeof direct === "object") return direct;
  const models = doc.models;
  if (Array.isArray(models)) {
    return models.find((m) => m && typeof m === "object" && (m as { name?: unknown }).name === name);
  }
  if (models && typeof models === "object") return (models as Record<string, unknown>)[name];
  return undefined;
}

interface Props {
  model: string;
  doc: ConfigDocument | undefined;
  error: string | null;
}

export function ConfigPanel({ model, doc, error }: Props) {
  const block = findModelConfig(doc, model);
  return (
    <section className="subcard" aria-labelledby="cfg-title">
      <h3 id="cfg-title" className="card-title">
        Configuration
      </h3>
      {error ? <p className="text-bad small">{error}</p> : null}
      {!error && !doc ? <p className="muted small">Loading…</p> : null}
      {doc && block === undefined ? (
        <p className="muted small">No block for {model} in the loaded config.</p>
      ) : null}
      {block !== undefined ? (
        <pre className="code" data-testid="model-config">
          {JSON.stringify(block, null, 2)}
        </pre>
      ) : null}
    </section>
  );
}
