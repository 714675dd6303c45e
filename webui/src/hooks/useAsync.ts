import { useCallback, useEffect, useState } from "react";
import { errorMessage } from "../api/client";

export interface AsyncState<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload: () => Promise<void>;
}

/**
 * Runs `fn` on mount and whenever `fn` changes (wrap it in useCallback with its
 * inputs); `reload` runs it again on demand.
 */
export function useAsync<T>(fn: () => Promise<T>): AsyncState<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);

  const reload = useCallback(() => {
    setLoading(true);
    return fn().then(
      (value) => {
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        setError(errorMessage(err));
        setLoading(false);
      },
    );
  }, [fn]);

  useEffect(() => {
    let cancelled = false;
    fn().then(
      (value) => {
        if (cancelled) return;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (cancelled) return;
        setError(errorMessage(err));
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [fn]);

  return { data, error, loading, reload };
}
