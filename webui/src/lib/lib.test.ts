import { describe, expect, it } from "vitest";
import type { LogLine } from "../api/types";
import { formatDuration, formatMb, formatMoney, formatRate, percent } from "./format";
import { mergeLogLines } from "./logMerge";
import { findModelConfig } from "./modelConfig";
import { fillDays } from "./usageDays";

describe("fillDays", () => {
  it("covers the whole period ending today, zeros where nothing happened", () => {
    const now = Date.parse("2026-03-10T15:00:00Z");
    const out = fillDays([{ day: "2026-03-09", requests: 2, total_tokens: 10, cost: 1 }], 4, now);
    expect(out.map((d) => d.day)).toEqual(["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]);
    expect(out.map((d) => d.requests)).toEqual([0, 0, 2, 0]);
  });
});

const l = (ts: number, line: string, stream = "stdout"): LogLine => ({ ts, line, stream });

describe("mergeLogLines", () => {
  it("drops replayed lines and keeps new ones", () => {
    const shown = [l(1, "a"), l(2, "b"), l(2, "c")];
    const merged = mergeLogLines(
      shown,
      [l(1, "a"), l(2, "b"), l(2, "c"), l(2, "d"), l(3, "e")],
      100,
    );
    expect(merged.map((x) => x.line)).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("keeps only the newest max lines", () => {
    const merged = mergeLogLines([], [l(1, "a"), l(2, "b"), l(3, "c")], 2);
    expect(merged.map((x) => x.line)).toEqual(["b", "c"]);
  });
});

describe("findModelConfig", () => {
  it("finds a block by name at the top level or under models", () => {
    expect(findModelConfig({ program: {}, m: { a: 1 } }, "m")).toEqual({ a: 1 });
    expect(findModelConfig({ models: { m: { b: 2 } } }, "m")).toEqual({ b: 2 });
    expect(findModelConfig({ models: [{ name: "m", c: 3 }] }, "m")).toEqual({ name: "m", c: 3 });
    expect(findModelConfig({ program: {} }, "m")).toBeUndefined();
    expect(findModelConfig(undefined, "m")).toBeUndefined();
  });
});

describe("format", () => {
  it("formats sizes, durations, rates, money and percentages", () => {
    expect(formatMb(512)).toBe("512 MiB");
    expect(formatMb(24576)).toBe("24.0 GiB");
    expect(formatMb(null)).toBe("–");
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(125)).toBe("2m 5s");
    expect(formatDuration(7300)).toBe("2h 1m");
    expect(formatDuration(200000)).toBe("2d 7h");
    expect(formatRate(0)).toBe("0");
    expect(formatRate(3.14159)).toBe("3.14");
    expect(formatRate(1234.5)).toBe("1,235");
    expect(formatMoney(3)).toBe("$3.00");
    expect(formatMoney(0.00123)).toBe("$0.0012");
    expect(percent(50, 200)).toBe(25);
    expect(percent(5, 0)).toBe(0);
    expect(percent(300, 200)).toBe(100);
  });
});
