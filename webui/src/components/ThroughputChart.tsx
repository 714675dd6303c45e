import { useMemo } from "react";
import { Line } from "react-chartjs-2";
import type { ChartOptions } from "chart.js";
import "../lib/chart";
import { formatClock, formatDuration, formatRate } from "../lib/format";
import { useLive } from "../state/liveContext";

const OPTIONS: ChartOptions<"line"> = {
  animation: false,
  responsive: true,
  maintainAspectRatio: false,
  interaction: { mode: "index", intersect: false },
  plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  scales: {
    x: { ticks: { maxTicksLimit: 6, maxRotation: 0 }, grid: { display: false } },
    tokens: {
      type: "linear",
      position: "left",
      beginAtZero: true,
      title: { display: true, text: "tokens/s" },
    },
    requests: {
      type: "linear",
      position: "right",
      beginAtZero: true,
      grid: { drawOnChartArea: false },
      title: { display: true, text: "requests/s" },
    },
  },
};

/** Live gateway throughput from the stream's `throughput` messages. */
export function ThroughputChart() {
  const { state } = useLive();
  const points = state.throughput;
  const last = points[points.length - 1];
  const span = last && points[0] ? last.ts - points[0].ts : 0;

  const data = useMemo(
    () => ({
      labels: points.map((p) => formatClock(p.ts)),
      datasets: [
        {
          label: "tokens/s",
          data: points.map((p) => p.tokens_per_s),
          yAxisID: "tokens",
          borderColor: "#2563eb",
          backgroundColor: "rgba(37, 99, 235, 0.12)",
          fill: true,
          pointRadius: 0,
          tension: 0.3,
          borderWidth: 2,
        },
        {
          label: "requests/s",
          data: points.map((p) => p.requests_per_s),
          yAxisID: "requests",
          borderColor: "#16a34a",
          backgroundColor: "#16a34a",
          pointRadius: 0,
          tension: 0.3,
          borderWidth: 2,
        },
      ],
    }),
    [points],
  );

  return (
    <section className="card" aria-labelledby="tp-title">
      <header className="card-head">
        <h2 id="tp-title" className="card-title">
          Live throughput
        </h2>
        <span className="muted small">
          {points.length > 1 ? `last ${formatDuration(span)}` : "live, updates each second"}
        </span>
      </header>
      <div className="chart-box">
        {points.length === 0 ? (
          <p className="muted empty">Waiting for throughput samples from the event stream…</p>
        ) : (
          <Line data={data} options={OPTIONS} aria-label="throughput chart" role="img" />
        )}
      </div>
      <dl
        className="kv-inline"
        data-testid="throughput-counter"
        data-samples={state.throughputSamples}
        data-requests-per-s={last?.requests_per_s ?? 0}
        data-tokens-per-s={last?.tokens_per_s ?? 0}
        data-peak-requests-per-s={state.peak.requests_per_s}
        data-peak-tokens-per-s={state.peak.tokens_per_s}
        data-requests-seen={state.usageSeen}
      >
        <div>
          <dt>Now</dt>
          <dd>
            {formatRate(last?.tokens_per_s)} tok/s · {formatRate(last?.requests_per_s)} req/s
          </dd>
        </div>
        <div>
          <dt>Peak</dt>
          <dd>
            {formatRate(state.peak.tokens_per_s)} tok/s · {formatRate(state.peak.requests_per_s)}{" "}
            req/s
          </dd>
        </div>
        <div>
          <dt>Requests seen</dt>
          <dd>{state.usageSeen}</dd>
        </div>
      </dl>
    </section>
  );
}
