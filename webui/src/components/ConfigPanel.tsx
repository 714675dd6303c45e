import type { ConfigDocument } from "../api/client";
import { findModelConfig } from "../lib/modelConfig";

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
