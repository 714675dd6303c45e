// Holds the live view of models, devices, throughput, events and usage,
// fed by the /api/ws stream (plus one REST read on load and on key change).
import {
  useCallback,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
  type ReactNode,
} from "react";
import { getAdminKey, onAdminKeyChange } from "../api/auth";
import {
  errorMessage,
  eventStreamProtocols,
  eventStreamUrl,
  getDevices,
  getModels,
  httpStatus,
} from "../api/client";
import type { ClientMessage, ServerMessage } from "../api/types";
import { useEventStream } from "../hooks/useEventStream";
import { LiveContext, type LiveContextValue, type LogListener } from "./liveContext";
import { initialLiveState, liveReducer } from "./liveReducer";

export function LiveDataProvider({ children }: { children: ReactNode }) {
  const [state, dispatch] = useReducer(liveReducer, initialLiveState);
  const [adminKey, setKey] = useState(getAdminKey);
  const [keyEpoch, setKeyEpoch] = useState(0);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [needsKey, setNeedsKey] = useState(false);
  const listeners = useRef(new Map<string, Set<LogListener>>());

  useEffect(
    () =>
      onAdminKeyChange((key) => {
        setKey(key);
        setKeyEpoch((n) => n + 1);
      }),
    [],
  );

  const onMessage = useCallback((msg: ServerMessage) => {
    if (msg.type === "log") {
      const subs = listeners.current.get(msg.model);
      subs?.forEach((fn) => fn({ ts: msg.ts, stream: msg.stream, line: msg.line }));
      return;
    }
    dispatch({ type: "server", msg, now: Date.now() });
  }, []);

  const onOpen = useCallback((send: (m: ClientMessage) => boolean) => {
    for (const [model, subs] of listeners.current) {
      if (subs.size > 0) send({ subscribe_logs: model });
    }
  }, []);

  // The admin key rides in the subprotocol list, not the URL (which ends up in logs).
  const url = useMemo(() => eventStreamUrl(), []);
  const protocols = useMemo(() => eventStreamProtocols(adminKey), [adminKey]);
  const { status, retryInMs, attempts, send } = useEventStream({
    url,
    protocols,
    onMessage,
    onOpen,
  });

  const refresh = useCallback(
    () =>
      Promise.all([getModels(), getDevices()]).then(
        ([models, devices]) => {
          dispatch({ type: "models", models, now: Date.now() });
          dispatch({ type: "devices", devices: devices.devices, ts: devices.ts });
          setLoadError(null);
          setNeedsKey(false);
        },
        (err: unknown) => {
          const status = httpStatus(err);
          setLoadError(errorMessage(err));
          setNeedsKey(status === 401 || status === 403);
        },
      ),
    [],
  );

  useEffect(() => {
    // One read on load and whenever the admin key changes; the stream does the rest.
    void refresh();
  }, [refresh, adminKey]);

  const subscribeLogs = useCallback(
    (model: string, fn: LogListener) => {
      let subs = listeners.current.get(model);
      if (!subs) {
        subs = new Set();
        listeners.current.set(model, subs);
      }
      subs.add(fn);
      if (subs.size === 1) send({ subscribe_logs: model });
      return () => {
        const current = listeners.current.get(model);
        if (!current) return;
        current.delete(fn);
        if (current.size === 0) {
          listeners.current.delete(model);
          send({ unsubscribe_logs: model });
        }
      };
    },
    [send],
  );

  const setModelState = useCallback((name: string, modelState: string) => {
    dispatch({ type: "modelState", name, state: modelState, now: Date.now() });
  }, []);

  const value: LiveContextValue = useMemo(
    () => ({
      state,
      status,
      retryInMs,
      attempts,
      loadError,
      needsKey,
      keyEpoch,
      subscribeLogs,
      refresh,
      setModelState,
    }),
    [
      state,
      status,
      retryInMs,
      attempts,
      loadError,
      needsKey,
      keyEpoch,
      subscribeLogs,
      refresh,
      setModelState,
    ],
  );

  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
