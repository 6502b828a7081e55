import { useCallback, useEffect, useState } from "react";

export interface Loaded<T> {
  data: T | null;
  error: Error | null;
  reload: () => void;
}

/** Loads once per change of `deps`; a stale answer never overwrites a newer one. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [tick, setTick] = useState(0);
  const stableLoad = useCallback(load, deps);
  useEffect(() => {
    let current = true;
    stableLoad().then(
      (value) => current && (setData(value), setError(null)),
      (failure: Error) => current && setError(failure),
    );
    return () => {
      current = false;
    };
  }, [stableLoad, tick]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}
