import { Line } from "react-chartjs-2";
import type { ChartOptions } from "chart.js";
import "../lib/chart";
import type { UsageByDay } from "../api/types";

const OPTIONS: ChartOptions<"line"> = {
  animation: false,
  responsive: true,
  maintainAspectRatio: false,
  interaction: { mode: "index", intersect: false },
  plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  scales: {
    x: { ticks: { maxTicksLimit: 10, maxRotation: 0 }, grid: { display: false } },
    tokens: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "tokens" } },
    cost: {
      type: "linear",
      position: "right",
      beginAtZero: true,
      grid: { drawOnChartArea: false },
      title: { display: true, text: "cost" },
    },
  },
};

export function DailyUsageChart({ days, currency }: { days: UsageByDay[]; currency: string }) {
  const data = {
    labels: days.map((d) => d.day.slice(5)),
    datasets: [
      {
        label: "tokens",
        data: days.map((d) => d.total_tokens),
        yAxisID: "tokens",
        borderColor: "#2563eb",
        backgroundColor: "rgba(37, 99, 235, 0.12)",
        fill: true,
        tension: 0.25,
        pointRadius: 2,
      },
      {
        label: `cost (${currency})`,
        data: days.map((d) => d.cost),
        yAxisID: "cost",
        borderColor: "#d97706",
        backgroundColor: "#d97706",
        tension: 0.25,
        pointRadius: 2,
      },
    ],
  };
  return (
    <section className="card" data-testid="usage-by-day">
      <header className="card-head">
        <h2 className="card-title">By day</h2>
      </header>
      <div className="chart-box">
        {days.length === 0 ? (
          <p className="muted empty">No requests in this period.</p>
        ) : (
          <Line data={data} options={OPTIONS} role="img" aria-label="usage by day" />
        )}
      </div>
    </section>
  );
}
