import { useCallback, useEffect, useState } from "react";
import { getUsageSummary } from "../api/client";
import { BarChartCard } from "../components/BarChartCard";
import { BudgetList } from "../components/BudgetList";
import { DailyUsageChart } from "../components/DailyUsageChart";
import { ErrorBanner } from "../components/ErrorBanner";
import { RecentRequests } from "../components/RecentRequests";
import { UsageTotals } from "../components/UsageTotals";
import { useAsync } from "../hooks/useAsync";
import { useLive } from "../state/liveContext";

const PERIODS = [7, 30, 90];
/** After requests arrive on the stream, re-read the summary at most this often. */
const REFRESH_AFTER_MS = 5000;

export function UsagePage() {
  const [days, setDays] = useState(30);
  const { state } = useLive();
  const load = useCallback(
    () => getUsageSummary(days).then((s) => ({ summary: s, readAt: Date.now() })),
    [days],
  );
  const result = useAsync(load);
  const summary = { ...result, data: result.data?.summary };
  const { reload } = result;
  const seen = state.usageSeen;

  useEffect(() => {
    if (seen === 0) return;
    const id = setTimeout(() => void reload(), REFRESH_AFTER_MS);
    return () => clearTimeout(id);
  }, [seen, reload]);

  const s = summary.data;
  return (
    <div className="page">
      <div className="row space-between wrap">
        <h1 className="page-title">Usage &amp; cost</h1>
        <label className="row gap-s">
          <span className="small">Period</span>
          <select
            value={days}
            onChange={(e) => setDays(Number(e.target.value))}
            aria-label="period"
          >
            {PERIODS.map((d) => (
              <option key={d} value={d}>
                last {d} days
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBanner message={summary.error} />
      {summary.loading && summary.data === undefined ? <p className="muted">Loading…</p> : null}
      {s === null ? (
        <section className="card">
          <p data-testid="usage-disabled">
            Usage accounting not enabled on this server. Requests still show below as they happen.
          </p>
        </section>
      ) : null}
      {s ? (
        <>
          <UsageTotals summary={s} days={days} />
          <div className="grid grid-2">
            <BarChartCard
              title="By model"
              testId="usage-by-model"
              labels={s.by_model.map((m) => m.model)}
              series={[
                { label: "tokens", values: s.by_model.map((m) => m.total_tokens), axis: "left" },
                {
                  label: `cost (${s.currency})`,
                  values: s.by_model.map((m) => m.cost),
                  axis: "right",
                },
              ]}
              leftTitle="tokens"
              rightTitle="cost"
            />
            <BarChartCard
              title="By API key"
              testId="usage-by-key"
              labels={s.by_key.map((k) => k.key_id || "(no key)")}
              series={[
                { label: "requests", values: s.by_key.map((k) => k.requests), axis: "left" },
                {
                  label: `cost (${s.currency})`,
                  values: s.by_key.map((k) => k.cost),
                  axis: "right",
                },
              ]}
              leftTitle="requests"
              rightTitle="cost"
            />
          </div>
          <div className="grid grid-2">
            <DailyUsageChart
              days={s.by_day}
              period={days}
              currency={s.currency}
              nowMs={result.data?.readAt ?? 0}
            />
            <BudgetList budgets={s.budgets} currency={s.currency} />
          </div>
        </>
      ) : null}
      <RecentRequests records={state.usage} currency={s?.currency ?? "USD"} />
    </div>
  );
}
