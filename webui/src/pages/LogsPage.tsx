import { useNavigate, useParams } from "react-router-dom";
import { LogView } from "../components/LogView";
import { StateBadge } from "../components/StateBadge";
import { useLive } from "../state/liveContext";

export function LogsPage() {
  const { name } = useParams();
  const navigate = useNavigate();
  const { state } = useLive();
  const model = name ?? state.models[0]?.name;
  const info = state.models.find((m) => m.name === model);

  return (
    <div className="page">
      <h1 className="page-title">Logs</h1>
      <section className="card">
        <header className="card-head wrap">
          <label className="row gap-s">
            <span>Model</span>
            <select
              value={model ?? ""}
              onChange={(e) => navigate(`/logs/${encodeURIComponent(e.target.value)}`)}
              aria-label="model"
            >
              {state.models.map((m) => (
                <option key={m.name} value={m.name}>
                  {m.name}
                </option>
              ))}
              {model && !info ? <option value={model}>{model}</option> : null}
            </select>
          </label>
          {info ? <StateBadge state={info.state} /> : null}
        </header>
        {model ? <LogView key={model} model={model} /> : <p className="muted empty">No models.</p>}
      </section>
    </div>
  );
}
