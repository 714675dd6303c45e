import { useState } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { getConfig } from "../api/client";
import { ErrorBanner } from "../components/ErrorBanner";
import { ModelDetail } from "../components/ModelDetail";
import { ModelTable } from "../components/ModelTable";
import { useAsync } from "../hooks/useAsync";
import { useModelActions, type ModelAction } from "../hooks/useModelActions";
import { useLive } from "../state/liveContext";

/** Model control centre: start/stop (one or many), load progress, config and the planner. */
export function ModelsPage() {
  const { name } = useParams();
  const navigate = useNavigate();
  const { state, loadError } = useLive();
  const actions = useModelActions();
  const config = useAsync(getConfig);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());

  const active = name ? state.models.find((m) => m.name === name) : undefined;
  const chosen = state.models.filter((m) => selected.has(m.name)).map((m) => m.name);

  const onAction = (a: ModelAction, n: string) => void actions.run(a, [n]);
  const onSelect = (n: string, on: boolean) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (on) next.add(n);
      else next.delete(n);
      return next;
    });
  const onSelectAll = (on: boolean) =>
    setSelected(on ? new Set(state.models.map((m) => m.name)) : new Set());
  const batch = (a: ModelAction) => void actions.run(a, chosen);

  return (
    <div className="page">
      <h1 className="page-title">Model control centre</h1>
      <ErrorBanner message={actions.error} onClose={actions.clearError} />
      <div className={`split ${active ? "with-detail" : ""}`}>
        <section className="card" aria-label="models">
          <header className="card-head wrap">
            <span className="small muted">
              {chosen.length ? `${chosen.length} selected` : "Tick models for batch actions"}
            </span>
            <div className="row gap-s">
              <button
                type="button"
                className="btn btn-primary btn-s"
                disabled={!chosen.length}
                onClick={() => batch("start")}
              >
                Start selected
              </button>
              <button
                type="button"
                className="btn btn-s"
                disabled={!chosen.length}
                onClick={() => batch("stop")}
              >
                Stop selected
              </button>
            </div>
          </header>
          {state.loaded ? (
            <ModelTable
              models={state.models}
              seenAt={state.modelSeenAt}
              rates={state.byModelRate}
              pending={actions.pending}
              onAction={onAction}
              selected={selected}
              onSelect={onSelect}
              onSelectAll={onSelectAll}
              activeName={active?.name}
            />
          ) : (
            <p className="muted empty">
              {loadError ? "Models could not be loaded (see above)." : "Loading models…"}
            </p>
          )}
          {!active ? (
            <p className="muted small">
              Select a model name for its config and the what-if planner.
            </p>
          ) : null}
        </section>
        {name && !active && state.loaded ? (
          <section className="card">
            <p>Unknown model “{name}”.</p>
          </section>
        ) : null}
        {active ? (
          <ModelDetail
            model={active}
            seenAt={state.modelSeenAt[active.name]}
            config={config.data}
            configError={config.error}
            busy={actions.pending.has(active.name)}
            onAction={onAction}
            onClose={() => navigate("/models")}
          />
        ) : null}
      </div>
    </div>
  );
}
