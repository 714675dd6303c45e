// Pure reducer for the live data the WebSocket stream carries.
import type {
  DeviceInfo,
  ManagerEvent,
  ModelInfo,
  ServerMessage,
  ThroughputRate,
  UsageRecord,
} from "../api/types";

export const MAX_THROUGHPUT_POINTS = 120;
export const MAX_EVENTS = 100;
export const MAX_USAGE = 100;

export interface ThroughputPoint extends ThroughputRate {
  ts: number;
}

export interface LiveState {
  models: ModelInfo[];
  /** Local time (ms) each model entry was last received, to tick elapsed times. */
  modelSeenAt: Record<string, number>;
  devices: DeviceInfo[];
  devicesTs: number | null;
  throughput: ThroughputPoint[];
  byModelRate: Record<string, ThroughputRate>;
  peak: ThroughputRate;
  throughputSamples: number;
  events: ManagerEvent[];
  usage: UsageRecord[];
  usageSeen: number;
  loaded: boolean;
}

export const initialLiveState: LiveState = {
  models: [],
  modelSeenAt: {},
  devices: [],
  devicesTs: null,
  throughput: [],
  byModelRate: {},
  peak: { requests_per_s: 0, tokens_per_s: 0 },
  throughputSamples: 0,
  events: [],
  usage: [],
  usageSeen: 0,
  loaded: false,
};

export type LiveAction =
  | { type: "server"; msg: ServerMessage; now: number }
  | { type: "models"; models: ModelInfo[]; now: number }
  | { type: "devices"; devices: DeviceInfo[]; ts: number }
  /** Optimistic state from a start/stop reply, before the stream confirms it. */
  | { type: "modelState"; name: string; state: string; now: number };

function seenAll(models: ModelInfo[], now: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of models) out[m.name] = now;
  return out;
}

function upsertModel(models: ModelInfo[], model: ModelInfo): ModelInfo[] {
  const idx = models.findIndex((m) => m.name === model.name);
  if (idx === -1) return [...models, model];
  const next = models.slice();
  next[idx] = model;
  return next;
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

export function liveReducer(state: LiveState, action: LiveAction): LiveState {
  switch (action.type) {
    case "models":
      return {
        ...state,
        models: action.models,
        modelSeenAt: seenAll(action.models, action.now),
        loaded: true,
      };
    case "devices":
      return { ...state, devices: action.devices, devicesTs: action.ts };
    case "modelState": {
      const current = state.models.find((m) => m.name === action.name);
      if (!current || current.state === action.state) return state;
      const startElapsed = action.state === "starting" ? 0 : current.start_elapsed_s;
      return {
        ...state,
        models: upsertModel(state.models, {
          ...current,
          state: action.state,
          start_elapsed_s: startElapsed,
        }),
        modelSeenAt: { ...state.modelSeenAt, [action.name]: action.now },
      };
    }
    case "server":
      return applyMessage(state, action.msg, action.now);
  }
}

function applyMessage(state: LiveState, msg: ServerMessage, now: number): LiveState {
  switch (msg.type) {
    case "snapshot":
      return {
        ...state,
        models: Array.isArray(msg.models) ? msg.models : state.models,
        modelSeenAt: seenAll(msg.models ?? [], now),
        devices: Array.isArray(msg.devices) ? msg.devices : state.devices,
        devicesTs: msg.ts ?? state.devicesTs,
        events: Array.isArray(msg.events) ? msg.events.slice(-MAX_EVENTS).reverse() : state.events,
        loaded: true,
      };
    case "model":
      if (!msg.model || typeof msg.model.name !== "string") return state;
      return {
        ...state,
        models: upsertModel(state.models, msg.model),
        modelSeenAt: { ...state.modelSeenAt, [msg.model.name]: now },
      };
    case "devices":
      return { ...state, devices: msg.devices ?? [], devicesTs: msg.ts ?? state.devicesTs };
    case "throughput": {
      const point: ThroughputPoint = {
        ts: num(msg.ts) || now / 1000,
        requests_per_s: num(msg.requests_per_s),
        tokens_per_s: num(msg.tokens_per_s),
      };
      const throughput = [...state.throughput, point].slice(-MAX_THROUGHPUT_POINTS);
      return {
        ...state,
        throughput,
        byModelRate: msg.by_model ?? {},
        peak: {
          requests_per_s: Math.max(state.peak.requests_per_s, point.requests_per_s),
          tokens_per_s: Math.max(state.peak.tokens_per_s, point.tokens_per_s),
        },
        throughputSamples: state.throughputSamples + 1,
      };
    }
    case "usage":
      if (!msg.record) return state;
      return {
        ...state,
        usage: [msg.record, ...state.usage].slice(0, MAX_USAGE),
        usageSeen: state.usageSeen + 1,
      };
    case "event":
      if (!msg.event) return state;
      return { ...state, events: [msg.event, ...state.events].slice(0, MAX_EVENTS) };
    default:
      return state;
  }
}
