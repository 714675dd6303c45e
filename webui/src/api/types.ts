// Types for the llm-manager management API and WebSocket event stream.

export type ModelState = "stopped" | "starting" | "ready" | "stopping" | "failed";

export interface Health {
  status: string;
  uptime_s: number;
  version: string;
}

export interface ServerInfo {
  name: string;
  version: string;
  host: string;
  port: number;
  config_path: string | null;
  models: number;
  devices: number;
  auth_required: boolean;
  started_at: number;
}

export interface ModelInfo {
  name: string;
  aliases: string[];
  mode: string;
  /** null for a model served by upstreams only */
  port: number | null;
  state: ModelState | string;
  profile: string | null;
  profiles: string[];
  pid: number | null;
  in_flight: number;
  queued: number;
  last_used: number | null;
  uptime_s: number | null;
  last_error: string | null;
  auto_start: boolean;
  ttl_s: number;
  start_elapsed_s: number | null;
  start_timeout_s: number;
  restarts: number;
  /** Scale-out (newer servers only; absent: one local process, as before). */
  max_instances?: number;
  min_instances?: number;
  /** Models tried in order when this one cannot serve. */
  fallbacks?: string[];
  /** Local processes of this model; instance 0's id is the model name. */
  instances?: InstanceInfo[];
  /** Remote OpenAI-compatible endpoints serving this model (never started or stopped here). */
  upstreams?: UpstreamInfo[];
  /** The profile the memory figures below are for: the running one, else the first (newer servers only). */
  memory_profile?: string | null;
  /** Device -> MB as the config declares (`memory_mb`). */
  memory_declared_mb?: Record<string, number>;
  /** Device -> MB the model was measured to hold; null until it has run once. */
  memory_measured_mb?: Record<string, number> | null;
  /** The same for every profile. */
  memory_profiles?: Record<string, MemoryFootprint>;
}

/** Declared vs learned memory of one hardware profile; placement reserves the larger per device. */
export interface MemoryFootprint {
  memory_declared_mb: Record<string, number>;
  memory_measured_mb: Record<string, number> | null;
}

/** One local process of a model. */
export interface InstanceInfo {
  /** "demo-chat" for instance 0, "demo-chat@1" for the next. */
  id: string;
  instance: number;
  port: number;
  state: ModelState | string;
  pid: number | null;
  profile: string | null;
  devices: string[];
  in_flight: number;
  uptime_s: number | null;
  last_error: string | null;
}

/** One remote upstream of a model, as health-checked by the manager. */
export interface UpstreamInfo {
  /** The URL's host[:port]: how answers and usage rows name it. */
  id: string;
  url: string;
  healthy: boolean;
  /** Seconds left in its cool-down after failures (0: not cooling). */
  cooling_s: number;
  in_flight: number;
  failures: number;
  last_error: string | null;
  weight: number;
}

export interface DeviceModelUse {
  model: string;
  memory_mb: number;
}

export interface DeviceInfo {
  name: string;
  plugin: string;
  online: boolean;
  offline_reason: string;
  device_type: string;
  memory_type: string;
  total_memory_mb: number;
  available_memory_mb: number;
  used_memory_mb: number;
  usage_percentage: number;
  temperature_celsius: number | null;
  models: DeviceModelUse[];
}

export interface StateChange {
  model: string;
  state: string;
}

export interface PlanDevice {
  name: string;
  needed_mb: number;
  free_before_mb: number;
  free_after_mb: number;
  holders: string[];
}

export interface Plan {
  model: string;
  fits: boolean;
  profile: string | null;
  evict: string[];
  reason: string;
  /** The model's state when it is already starting, ready or stopping (then nothing is started or evicted). */
  running?: string | null;
  /** The planned (else first) profile's memory: declared, and measured (null until known); `needed_mb` is the
   * larger of the two. */
  memory_declared_mb?: Record<string, number>;
  memory_measured_mb?: Record<string, number> | null;
  devices: PlanDevice[];
}

export type LogStream = "stdout" | "stderr" | "manager" | string;

export interface LogLine {
  ts: number;
  stream: LogStream;
  line: string;
}

export interface UsageByModel {
  model: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost: number;
}

export interface UsageByKey {
  key_id: string;
  requests: number;
  total_tokens: number;
  cost: number;
}

export interface UsageByDay {
  day: string;
  requests: number;
  total_tokens: number;
  cost: number;
}

export interface Budget {
  name: string;
  scope: string;
  period: string;
  unit: "cost" | "tokens" | string;
  limit: number;
  used: number;
  resets_at: number;
}

export interface UsageSummary {
  currency: string;
  total_requests: number;
  total_tokens: number;
  total_cost: number;
  by_model: UsageByModel[];
  by_key: UsageByKey[];
  by_day: UsageByDay[];
  forecast: {
    month_to_date_cost: number;
    month_end_forecast: number;
    daily_average: number;
  };
  budgets: Budget[];
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  models: string[];
  /** null for keys written in the config file */
  created_at: number | null;
  revoked: boolean;
  /** "store": created at run time (revocable here); "config": from the config file */
  source?: "store" | "config" | string;
}

export interface CreatedKey {
  id: string;
  name: string;
  key: string;
  prefix: string;
  models: string[];
}

export interface UsageRecord {
  model: string;
  endpoint: string;
  status: number | string;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  ttft_ms: number | null;
  total_ms: number | null;
  cost: number;
  ts: number;
  key_id: string | null;
  /** Which instance ("demo-chat@1") or upstream host served it (newer servers only). */
  instance?: string;
}

export interface ManagerEvent {
  kind: "start" | "ready" | "stop" | "evict" | "crash" | "fail" | "idle_stop" | "config" | string;
  model: string;
  detail: string;
  ts: number;
}

export interface ThroughputRate {
  requests_per_s: number;
  tokens_per_s: number;
}

/** Messages the server sends over /api/ws. */
export type ServerMessage =
  | {
      type: "snapshot";
      models: ModelInfo[];
      devices: DeviceInfo[];
      /** Recent events, oldest first (newer servers only). */
      events?: ManagerEvent[];
      ts: number;
    }
  | { type: "model"; model: ModelInfo }
  | { type: "devices"; devices: DeviceInfo[]; ts: number }
  | {
      type: "throughput";
      ts: number;
      requests_per_s: number;
      tokens_per_s: number;
      by_model: Record<string, ThroughputRate>;
    }
  | { type: "usage"; record: UsageRecord }
  | { type: "event"; event: ManagerEvent }
  | { type: "log"; model: string; ts: number; stream: LogStream; line: string };

/** Messages the client sends over /api/ws. */
export type ClientMessage = { subscribe_logs: string } | { unsubscribe_logs: string };

/** OpenAI Batch statuses; the last four are final. */
export type BatchStatus =
  | "validating"
  | "in_progress"
  | "finalizing"
  | "cancelling"
  | "completed"
  | "failed"
  | "expired"
  | "cancelled";

export interface BatchRequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface BatchError {
  code?: string | null;
  message?: string | null;
  param?: string | null;
  line?: number | null;
}

/** The OpenAI Batch object (GET /v1/batches, /v1/batches/{id}). Times are epoch seconds. */
export interface Batch {
  id: string;
  object: "batch" | string;
  endpoint: string;
  status: BatchStatus | string;
  input_file_id: string;
  output_file_id: string | null;
  error_file_id: string | null;
  completion_window?: string;
  created_at: number;
  in_progress_at?: number | null;
  expires_at: number | null;
  finalizing_at?: number | null;
  completed_at?: number | null;
  failed_at?: number | null;
  expired_at?: number | null;
  cancelling_at?: number | null;
  cancelled_at?: number | null;
  request_counts: BatchRequestCounts | null;
  metadata: Record<string, string> | null;
  errors?: { object?: string; data?: BatchError[] } | null;
}

/** One page of GET /v1/batches (newest first; `after` = last_id for the next page). */
export interface BatchList {
  object: "list";
  data: Batch[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/** One model as a node's heartbeat reports it (GET /api/cluster). */
export interface ClusterModel {
  name: string;
  aliases: string[];
  mode: string | null;
  state: string;
  in_flight: number;
  queued: number;
  instances: { id: string; state: string }[];
  upstreams: { id: string; healthy: boolean }[];
}

/** One manager sharing the database: its heartbeat, devices and models. */
export interface ClusterNode {
  name: string;
  url: string;
  started_at: number;
  last_seen: number;
  seen_s_ago: number;
  up: boolean;
  self: boolean;
  version?: string;
  models: ClusterModel[];
  devices: { name: string; online: boolean; free_mb: number; total_mb: number }[];
}

export interface ClusterView {
  node: string;
  nodes: ClusterNode[];
}
