import type { UsageSummary } from "../api/types";
import { formatMoney, formatNumber } from "../lib/format";

export function UsageTotals({ summary, days }: { summary: UsageSummary; days: number }) {
  const c = summary.currency;
  const items: [string, string][] = [
    [`Requests (${days} d)`, formatNumber(summary.total_requests)],
    [`Tokens (${days} d)`, formatNumber(summary.total_tokens)],
    [`Cost (${days} d)`, formatMoney(summary.total_cost, c)],
    ["Month to date", formatMoney(summary.forecast.month_to_date_cost, c)],
    ["Month-end forecast", formatMoney(summary.forecast.month_end_forecast, c)],
    ["Daily average", formatMoney(summary.forecast.daily_average, c)],
  ];
  return (
    <div className="tiles" data-testid="usage-totals">
      {items.map(([label, value]) => (
        <div className="tile" key={label}>
          <span className="stat-label">{label}</span>
          <span className="tile-value">{value}</span>
        </div>
      ))}
    </div>
  );
}
