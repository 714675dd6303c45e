import { Bar } from "react-chartjs-2";
import type { ChartOptions } from "chart.js";
import "../lib/chart";
import { PALETTE } from "../lib/colors";

export interface BarSeries {
  label: string;
  values: number[];
  axis: "left" | "right";
}

interface Props {
  title: string;
  labels: string[];
  series: BarSeries[];
  leftTitle: string;
  rightTitle?: string;
  empty?: string;
  testId?: string;
}

/** A bar chart (one or two value axes) in a card, e.g. tokens and cost by model. */
export function BarChartCard({
  title,
  labels,
  series,
  leftTitle,
  rightTitle,
  empty,
  testId,
}: Props) {
  const options: ChartOptions<"bar"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    scales: {
      x: { ticks: { autoSkip: true, maxRotation: 45 }, grid: { display: false } },
      left: {
        type: "linear",
        position: "left",
        beginAtZero: true,
        title: { display: true, text: leftTitle },
      },
      ...(rightTitle
        ? {
            right: {
              type: "linear" as const,
              position: "right" as const,
              beginAtZero: true,
              grid: { drawOnChartArea: false },
              title: { display: true, text: rightTitle },
            },
          }
        : {}),
    },
  };
  const data = {
    labels,
    datasets: series.map((s, i) => ({
      label: s.label,
      data: s.values,
      yAxisID: s.axis,
      backgroundColor: PALETTE[i % PALETTE.length],
      borderRadius: 3,
      maxBarThickness: 40,
    })),
  };
  return (
    <section className="card" data-testid={testId}>
      <header className="card-head">
        <h2 className="card-title">{title}</h2>
      </header>
      <div className="chart-box">
        {labels.length === 0 ? (
          <p className="muted empty">{empty ?? "No data for this period."}</p>
        ) : (
          <Bar data={data} options={options} role="img" aria-label={title} />
        )}
      </div>
    </section>
  );
}
