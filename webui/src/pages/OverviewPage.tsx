import { DeviceCard } from "../components/DeviceCard";
import { ErrorBanner } from "../components/ErrorBanner";
import { EventList } from "../components/EventList";
import { HealthPanel } from "../components/HealthPanel";
import { ModelTable } from "../components/ModelTable";
import { ThroughputChart } from "../components/ThroughputChart";
import { useModelActions } from "../hooks/useModelActions";
import { useLive } from "../state/liveContext";

export function OverviewPage() {
  const { state, loadError } = useLive();
  const actions = useModelActions();
  const onAction = (a: "start" | "stop", name: string) => void actions.run(a, [name]);

  return (
    <div className="page">
      <h1 className="page-title">Overview</h1>
      <HealthPanel />
      <section className="card" aria-labelledby="models-title">
        <header className="card-head">
          <h2 id="models-title" className="card-title">
            Models
          </h2>
          <span className="muted small">
            {state.models.filter((m) => m.state === "ready").length} ready of {state.models.length}
          </span>
        </header>
        <ErrorBanner message={actions.error} onClose={actions.clearError} />
        {state.loaded ? (
          <ModelTable
            models={state.models}
            seenAt={state.modelSeenAt}
            rates={state.byModelRate}
            pending={actions.pending}
            onAction={onAction}
          />
        ) : (
          <p className="muted empty">
            {loadError ? "Models could not be loaded (see above)." : "Loading models…"}
          </p>
        )}
      </section>
      <div className="grid grid-main-side">
        <ThroughputChart />
        <EventList events={state.events} limit={8} />
      </div>
      <section aria-labelledby="dev-title">
        <h2 id="dev-title" className="section-title">
          Devices
        </h2>
        {state.devices.length === 0 ? (
          <p className="muted">No devices reported.</p>
        ) : (
          <div className="grid grid-devices">
            {state.devices.map((d) => (
              <DeviceCard key={d.name} device={d} />
            ))}
          </div>
        )}
      </section>
    </div>
  );
}
