import { render, type RenderResult } from "@testing-library/react";
import type { ReactElement } from "react";
import { MemoryRouter } from "react-router-dom";
import { LiveContext, type LiveContextValue } from "../state/liveContext";
import { initialLiveState, type LiveState } from "../state/liveReducer";

type LiveOverrides = Omit<Partial<LiveContextValue>, "state"> & { state?: Partial<LiveState> };

export function liveValue(over: LiveOverrides = {}): LiveContextValue {
  const { state, ...rest } = over;
  return {
    status: "open",
    retryInMs: null,
    attempts: 0,
    loadError: null,
    needsKey: false,
    keyEpoch: 0,
    subscribeLogs: () => () => undefined,
    refresh: async () => undefined,
    setModelState: () => undefined,
    ...rest,
    state: { ...initialLiveState, loaded: true, ...state },
  };
}

/** Renders `ui` inside a router and a fixed live-data context. */
export function renderWithLive(
  ui: ReactElement,
  value: LiveContextValue = liveValue(),
  path = "/",
): RenderResult {
  return render(
    <LiveContext.Provider value={value}>
      <MemoryRouter initialEntries={[path]}>{ui}</MemoryRouter>
    </LiveContext.Provider>,
  );
}
