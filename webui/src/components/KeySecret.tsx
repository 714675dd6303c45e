import { useState } from "react";
import type { CreatedKey } from "../api/types";

/** The new key's secret, shown this once, with a copy button. */
export function KeySecret({ created, onDone }: { created: CreatedKey; onDone: () => void }) {
  const [copied, setCopied] = useState<"" | "ok" | "fail">("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied("ok");
    } catch {
      setCopied("fail");
    }
  };
  return (
    <section
      className="card secret"
      role="alertdialog"
      aria-labelledby="secret-title"
      data-testid="key-secret"
    >
      <h2 id="secret-title" className="card-title">
        Key “{created.name}” created
      </h2>
      <p className="banner banner-warn small">
        <span>
          Copy this key now. It is shown only once: the server keeps only a hash, so it cannot be
          shown again.
        </span>
      </p>
      <div className="row gap-s secret-row">
        <code className="secret-value" data-testid="key-secret-value">
          {created.key}
        </code>
        <button type="button" className="btn btn-primary btn-s" onClick={copy}>
          {copied === "ok" ? "Copied" : "Copy"}
        </button>
      </div>
      {copied === "fail" ? (
        <p className="small text-bad">Copy failed; select the key and copy it by hand.</p>
      ) : null}
      <p className="small muted">
        Models: {created.models.length ? created.models.join(", ") : "all"}
      </p>
      <div>
        <button type="button" className="btn btn-s" onClick={onDone}>
          I have saved it
        </button>
      </div>
    </section>
  );
}
