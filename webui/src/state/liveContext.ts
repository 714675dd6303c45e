import { createContext, useContext } from "react";
import type { LogLine } from "../api/types";
import type { ConnectionStatus } from "../hooks/useEventStream";
import { initialLiveState, type LiveState } from "./liveReducer";

export type LogListener = (line: LogLine) => void;

export interface LiveContextValue {
  state: LiveState;
  status: ConnectionStatus;
  retryInMs: number | null;
  attempts: number;
  /** Last error from the initial REST load (e.g. 401), or null. */
  loadError: string | null;
  /** The server refused the management API for want of a (right) admin key. */
  needsKey: boolean;
  /** Changes whenever the admin key changes, so pages can re-read. */
  keyEpoch: number;
  /** Subscribe to live log lines of one model; returns the unsubscribe function. */
  subscribeLogs: (model: string, fn: LogListener) => () => void;
  /** Re-read models and devices over REST (after an action, or a key change). */
  refresh: () => Promise<void>;
  /** Apply the state a start/stop reply reported until the stream confirms it. */
  setModelState: (name: string, state: string) => void;
}

export const LiveContext = createContext<LiveContextValue>({
  state: initialLiveState,
  status: "connecting",
  retryInMs: null,
  attempts: 0,
  loadError: null,
  needsKey: false,
  keyEpoch: 0,
  subscribeLogs: () => () => undefined,
  refresh: async () => undefined,
  setModelState: () => undefined,
});

export function useLive(): LiveContextValue {
  return useContext(LiveContext);
}
