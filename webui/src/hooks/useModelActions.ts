import { useCallback, useState } from "react";
import { errorMessage, startModel, stopModel } from "../api/client";
import { useLive } from "../state/liveContext";

export type ModelAction = "start" | "stop";

export interface ModelActions {
  pending: ReadonlySet<string>;
  error: string | null;
  clearError: () => void;
  run: (action: ModelAction, names: string[]) => Promise<void>;
}

/** Start/stop one or many models; the stream reports what happens next. */
export function useModelActions(): ModelActions {
  const { setModelState } = useLive();
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [error, setError] = useState<string | null>(null);

  const run = useCallback(
    async (action: ModelAction, names: string[]) => {
      if (names.length === 0) return;
      setError(null);
      setPending((prev) => new Set([...prev, ...names]));
      const call = action === "start" ? startModel : stopModel;
      const results = await Promise.allSettled(names.map((n) => call(n)));
      const failures: string[] = [];
      results.forEach((r, i) => {
        const name = names[i] ?? "";
        if (r.status === "fulfilled") {
          if (r.value && typeof r.value.state === "string") setModelState(name, r.value.state);
        } else {
          failures.push(`${action} ${name}: ${errorMessage(r.reason)}`);
        }
      });
      setPending((prev) => {
        const next = new Set(prev);
        names.forEach((n) => next.delete(n));
        return next;
      });
      if (failures.length) setError(failures.join("\n"));
    },
    [setModelState],
  );

  return { pending, error, clearError: () => setError(null), run };
}
