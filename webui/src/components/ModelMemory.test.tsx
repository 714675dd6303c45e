import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { formatOver, memoryRows } from "../lib/memory";
import { model } from "../test/fixtures";
import { renderWithLive } from "../test/render";
import { ModelDetail } from "./ModelDetail";
import { ModelMemory } from "./ModelMemory";

describe("memoryRows", () => {
  it("puts declared and measured side by side and reserves the larger", () => {
    const rows = memoryRows({
      memory_declared_mb: { gpu0: 4000, gpu1: 2000 },
      memory_measured_mb: { gpu0: 7000, gpu1: 2100 },
    });
    expect(rows.map((r) => [r.device, r.declaredMb, r.measuredMb, r.reservedMb, r.warn])).toEqual([
      ["gpu0", 4000, 7000, 7000, true],
      ["gpu1", 2000, 2100, 2100, false], // +5 %: within the 10 % the server tolerates
    ]);
    expect(rows.map((r) => formatOver(r.overPct))).toEqual(["+75 %", "+5 %"]);
  });

  it("leaves measured empty until known and keeps measured-only devices", () => {
    expect(memoryRows({ memory_declared_mb: { gpu: 4000 }, memory_measured_mb: null })).toEqual([
      {
        device: "gpu",
        declaredMb: 4000,
        measuredMb: null,
        reservedMb: 4000,
        overPct: null,
        warn: false,
      },
    ]);
    const rows = memoryRows({ memory_declared_mb: {}, memory_measured_mb: { gpu: 500 } });
    expect(rows).toMatchObject([{ device: "gpu", declaredMb: 0, reservedMb: 500, warn: true }]);
    expect(rows.map((r) => formatOver(r.overPct))).toEqual(["new"]);
    expect(formatOver(-4.6)).toBe("−5 %");
  });
});

describe("ModelMemory", () => {
  it("shows declared vs measured and warns when the model holds more than declared", () => {
    render(
      <ModelMemory
        model={model({
          memory_profile: "gpu",
          memory_declared_mb: { gpu: 4000 },
          memory_measured_mb: { gpu: 7000 },
          memory_profiles: {
            gpu: { memory_declared_mb: { gpu: 4000 }, memory_measured_mb: { gpu: 7000 } },
            cpu: { memory_declared_mb: {}, memory_measured_mb: null },
          },
        })}
      />,
    );
    const [, row] = within(screen.getByTestId("memory-table")).getAllByRole("row");
    if (!row) throw new Error("no device row");
    expect(row.dataset.warn).toBe("yes");
    expect(row).toHaveTextContent("4000 MB");
    expect(row).toHaveTextContent("7000 MB (+75 %)");
    expect(screen.getByText(/profile gpu/)).toBeInTheDocument();
    expect(screen.getByTestId("memory-warning")).toHaveTextContent(
      "placement reserves the measured memory",
    );
    expect(screen.getByText(/Other profiles: cpu/)).toBeInTheDocument();
  });

  it("says not yet before a first run, and is absent for servers without footprints", () => {
    const { unmount } = render(
      <ModelMemory
        model={model({
          memory_profile: "gpu",
          memory_declared_mb: { gpu: 4000 },
          memory_measured_mb: null,
        })}
      />,
    );
    expect(screen.getByTestId("memory-table")).toHaveTextContent("not yet");
    expect(screen.queryByTestId("memory-warning")).toBeNull();
    unmount();
    render(<ModelMemory model={model()} />);
    expect(screen.queryByTestId("model-memory")).toBeNull();
  });

  it("is part of the model detail", () => {
    renderWithLive(
      <ModelDetail
        model={model({
          memory_profile: "default",
          memory_declared_mb: { gpu: 1000 },
          memory_measured_mb: { gpu: 1000 },
        })}
        seenAt={Date.now()}
        config={undefined}
        configError={null}
        busy={false}
        onAction={() => undefined}
        onClose={() => undefined}
      />,
    );
    expect(
      within(screen.getByTestId("model-detail")).getByTestId("memory-table"),
    ).toHaveTextContent("1000 MB (±0 %)");
  });
});
