import { useCallback, useEffect, useRef, useState } from "react";
import { cancelBatch, errorMessage, getFileContent, listBatches } from "../api/client";
import type { Batch } from "../api/types";
import { BatchTable, type BatchFileKind } from "../components/BatchTable";
import { ErrorBanner } from "../components/ErrorBanner";
import { useAsync } from "../hooks/useAsync";
import { isBatchActive } from "../lib/batches";
import { saveBlob } from "../lib/download";

/** Batches shown at first and added by "Show more". */
export const BATCH_PAGE = 50;
/** While a batch is validating, in progress, finalizing or cancelling, re-read the list this often. */
export const BATCH_POLL_MS = 3000;

function EmptyState() {
  const base = `${window.location.origin}/v1`;
  return (
    <div className="empty-batches" data-testid="batches-empty">
      <p>
        No batches yet. Upload a JSONL file of requests (one{" "}
        <code>{'{"custom_id", "method", "url", "body"}'}</code> per line) and create a batch with
        the <code>openai</code> SDK:
      </p>
      <pre className="code">
        {`from openai import OpenAI
c = OpenAI(base_url="${base}", api_key="sk-…")
c.batches.create(input_file_id=c.files.create(file=open("requests.jsonl", "rb"), purpose="batch").id,
                 endpoint="/v1/chat/completions", completion_window="24h")`}
      </pre>
    </div>
  );
}

export function BatchesPage() {
  const [max, setMax] = useState(BATCH_PAGE);
  const load = useCallback(() => listBatches(max), [max]);
  const batches = useAsync(load);
  const { reload } = batches;
  const [busyId, setBusyId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const page = batches.data;
  const active = page?.batches.some(isBatchActive) ?? false;
  const inFlight = useRef(false);

  // Poll only while something still moves; a slow reply is never overlapped by the next one.
  useEffect(() => {
    if (!active) return;
    const id = setInterval(() => {
      if (inFlight.current || document.hidden) return;
      inFlight.current = true;
      void reload().finally(() => {
        inFlight.current = false;
      });
    }, BATCH_POLL_MS);
    return () => clearInterval(id);
  }, [active, reload]);

  const onCancel = async (b: Batch) => {
    if (!window.confirm(`Cancel batch ${b.id}? Lines not yet run go to its error file.`)) return;
    setBusyId(b.id);
    setError(null);
    try {
      await cancelBatch(b.id);
      await reload();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusyId(null);
    }
  };

  const onDownload = async (b: Batch, kind: BatchFileKind) => {
    const fileId = kind === "output" ? b.output_file_id : b.error_file_id;
    if (!fileId) return;
    setError(null);
    try {
      saveBlob(await getFileContent(fileId), `${b.id}_${kind}.jsonl`);
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  return (
    <div className="page">
      <div className="row space-between wrap gap-m">
        <h1 className="page-title">Batches</h1>
        <button
          type="button"
          className="btn btn-s"
          onClick={() => void reload()}
          disabled={batches.loading}
        >
          Refresh
        </button>
      </div>
      <p className="muted small">
        OpenAI-compatible batch jobs (<code>/v1/batches</code>), newest first. They run at low
        priority next to interactive requests
        {active ? "; this list refreshes every few seconds while one is running" : ""}.
      </p>
      <ErrorBanner
        message={error ?? batches.error}
        onClose={error ? () => setError(null) : undefined}
      />
      <section className="card" aria-label="batches">
        {batches.loading && page === undefined ? <p className="muted">Loading…</p> : null}
        {page === null ? (
          <p className="muted" data-testid="batches-disabled">
            The Batches API is not enabled on this server (it needs the usage store).
          </p>
        ) : null}
        {page && page.batches.length === 0 ? <EmptyState /> : null}
        {page && page.batches.length > 0 ? (
          <BatchTable
            batches={page.batches}
            busyId={busyId}
            onCancel={(b) => void onCancel(b)}
            onDownload={(b, kind) => void onDownload(b, kind)}
          />
        ) : null}
        {page?.hasMore ? (
          <div className="row toolbar-bottom">
            <button
              type="button"
              className="btn btn-s"
              onClick={() => setMax((m) => m + BATCH_PAGE)}
              disabled={batches.loading}
            >
              Show more
            </button>
          </div>
        ) : null}
      </section>
    </div>
  );
}
