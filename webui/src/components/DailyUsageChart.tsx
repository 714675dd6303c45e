import { useMemo } from "react";
import type { UsageByDay } from "../api/types";
import { fillDays } from "../lib/usageDays";
import { BarChartCard } from "./BarChartCard";

interface Props {
  days: UsageByDay[];
  period: number;
  currency: string;
  nowMs: number;
}

/** Tokens and cost per day over the whole period (empty days included). */
export function DailyUsageChart({ days, period, currency, nowMs }: Props) {
  const filled = useMemo(() => fillDays(days, period, nowMs), [days, period, nowMs]);
  const empty = days.length === 0;
  return (
    <BarChartCard
      title="By day (UTC)"
      testId="usage-by-day"
      labels={empty ? [] : filled.map((d) => d.day.slice(5))}
      series={[
        { label: "tokens", values: filled.map((d) => d.total_tokens), axis: "left" },
        { label: `cost (${currency})`, values: filled.map((d) => d.cost), axis: "right" },
      ]}
      leftTitle="tokens"
      rightTitle="cost"
      empty="No requests in this period."
    />
  );
}
