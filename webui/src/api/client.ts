// Typed client for the llm-manager management API (same origin).
import axios, { AxiosError } from "axios";
import { getAdminKey } from "./auth";
import type {
  ApiKey,
  Batch,
  BatchList,
  ClusterView,
  CreatedKey,
  DeviceInfo,
  Health,
  LogLine,
  ModelInfo,
  Plan,
  ServerInfo,
  StateChange,
  UsageSummary,
} from "./types";

export const http = axios.create({ baseURL: "/", timeout: 15000 });

http.interceptors.request.use((config) => {
  const key = getAdminKey();
  if (key) config.headers.set("Authorization", `Bearer ${key}`);
  return config;
});

/** Human-readable message for a failed request (OpenAI error shape aware). */
export function errorMessage(err: unknown): string {
  if (err instanceof AxiosError) {
    const data = err.response?.data as { error?: { message?: string } | string } | undefined;
    const status = err.response?.status;
    let msg: string | undefined;
    if (data && typeof data === "object" && data.error) {
      msg = typeof data.error === "string" ? data.error : data.error.message;
    }
    if (status === 401 && !msg) msg = "unauthorized: set the admin key in Settings";
    if (msg) return status ? `${msg} (HTTP ${status})` : msg;
    if (status) return `HTTP ${status} ${err.response?.statusText ?? ""}`.trim();
    return err.message || "network error";
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function httpStatus(err: unknown): number | undefined {
  return err instanceof AxiosError ? err.response?.status : undefined;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof AxiosError && err.response?.status === 404;
}

const enc = encodeURIComponent;

export async function getHealth(): Promise<Health> {
  return (await http.get<Health>("/api/health")).data;
}

export async function getInfo(): Promise<ServerInfo> {
  return (await http.get<ServerInfo>("/api/info")).data;
}

export async function getModels(): Promise<ModelInfo[]> {
  return (await http.get<{ models: ModelInfo[] }>("/api/models-info")).data.models;
}

/** The managers sharing this one's database (a node with no usage store lists none). */
export async function getCluster(): Promise<ClusterView> {
  return (await http.get<ClusterView>("/api/cluster")).data;
}

export async function getDevices(): Promise<{ devices: DeviceInfo[]; ts: number }> {
  return (await http.get<{ devices: DeviceInfo[]; ts: number }>("/api/devices")).data;
}

export async function startModel(name: string): Promise<StateChange> {
  return (await http.post<StateChange>(`/api/models/${enc(name)}/start`)).data;
}

export async function stopModel(name: string): Promise<StateChange> {
  return (await http.post<StateChange>(`/api/models/${enc(name)}/stop`)).data;
}

export async function getPlan(name: string): Promise<Plan> {
  return (await http.get<Plan>(`/api/plan/${enc(name)}`)).data;
}

export async function getLogs(name: string, lines = 200): Promise<LogLine[]> {
  const res = await http.get<{ model: string; lines: LogLine[] }>(`/api/logs/${enc(name)}`, {
    params: { lines },
  });
  return res.data.lines;
}

export type ConfigDocument = Record<string, unknown>;

export async function getConfig(): Promise<ConfigDocument> {
  return (await http.get<ConfigDocument>("/api/config")).data;
}

type RawDay = Partial<UsageSummary["by_day"][number]> & { time?: string; date?: string };

/** Fills gaps in a usage summary so the charts never meet a missing field. */
export function normalizeUsage(raw: Partial<UsageSummary>): UsageSummary {
  const byDay = (raw.by_day ?? []) as RawDay[];
  return {
    currency: raw.currency ?? "USD",
    total_requests: raw.total_requests ?? 0,
    total_tokens: raw.total_tokens ?? 0,
    total_cost: raw.total_cost ?? 0,
    by_model: raw.by_model ?? [],
    by_key: raw.by_key ?? [],
    by_day: byDay.map((d) => ({
      // "day" per the API; some servers send an ISO "time" (or "date") instead
      day: String(d.day ?? d.time ?? d.date ?? "").slice(0, 10),
      requests: d.requests ?? 0,
      total_tokens: d.total_tokens ?? 0,
      cost: d.cost ?? 0,
    })),
    forecast: {
      month_to_date_cost: raw.forecast?.month_to_date_cost ?? 0,
      month_end_forecast: raw.forecast?.month_end_forecast ?? 0,
      daily_average: raw.forecast?.daily_average ?? 0,
    },
    budgets: raw.budgets ?? [],
  };
}

/** Usage summary, or null when the server has no usage accounting (404). */
export async function getUsageSummary(days = 30): Promise<UsageSummary | null> {
  try {
    const res = await http.get<Partial<UsageSummary>>("/api/usage/summary", { params: { days } });
    return normalizeUsage(res.data ?? {});
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** API keys, or null when the server has no key management (404). */
export async function listKeys(): Promise<ApiKey[] | null> {
  try {
    return (await http.get<{ keys: ApiKey[] }>("/api/keys")).data.keys;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export async function createKey(name: string, models?: string[]): Promise<CreatedKey> {
  const body: { name: string; models?: string[] } = { name };
  if (models && models.length) body.models = models;
  return (await http.post<CreatedKey>("/api/keys", body)).data;
}

export async function revokeKey(id: string): Promise<{ id: string; revoked: boolean }> {
  return (await http.delete<{ id: string; revoked: boolean }>(`/api/keys/${enc(id)}`)).data;
}

/** Batches (newest first) read page by page up to `max`, and whether the server has more. */
export interface BatchPage {
  batches: Batch[];
  hasMore: boolean;
}

/** The server's page size limit for GET /v1/batches. */
const BATCH_PAGE_MAX = 100;

/**
 * Batches, newest first, up to `max` (following OpenAI's `after` cursor), or null when the
 * server has no Batches API (404). The admin key sees every key's batches.
 */
export async function listBatches(max = 50): Promise<BatchPage | null> {
  const batches: Batch[] = [];
  let after: string | null = null;
  try {
    for (;;) {
      const limit = Math.min(BATCH_PAGE_MAX, max - batches.length);
      const params: { limit: number; after?: string } = { limit };
      if (after) params.after = after;
      const page = (await http.get<BatchList>("/v1/batches", { params })).data;
      batches.push(...(page.data ?? []));
      if (!page.has_more || !page.last_id || batches.length >= max) {
        return { batches, hasMore: Boolean(page.has_more) };
      }
      after = page.last_id;
    }
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export async function getBatch(id: string): Promise<Batch> {
  return (await http.get<Batch>(`/v1/batches/${enc(id)}`)).data;
}

export async function cancelBatch(id: string): Promise<Batch> {
  return (await http.post<Batch>(`/v1/batches/${enc(id)}/cancel`)).data;
}

/**
 * A file's bytes (a batch's output or error JSONL) as a Blob: fetched with the admin key
 * header, which a plain link could not send. An error reply's JSON body is decoded so
 * errorMessage() can show the server's message.
 */
export async function getFileContent(fileId: string): Promise<Blob> {
  try {
    return (
      await http.get<Blob>(`/v1/files/${enc(fileId)}/content`, {
        responseType: "blob",
        timeout: 120000,
      })
    ).data;
  } catch (err) {
    const res = err instanceof AxiosError ? err.response : undefined;
    if (res && typeof Blob !== "undefined" && res.data instanceof Blob) {
      try {
        res.data = JSON.parse(await res.data.text());
      } catch {
        // not JSON: errorMessage() falls back to the HTTP status
      }
    }
    throw err;
  }
}

/** Subprotocol the manager's /api/ws speaks; the server selects it in its handshake reply. */
export const EVENT_STREAM_PROTOCOL = "llm-manager";
/** Prefix of the subprotocol that carries the admin key ("bearer." + base64url(key)). */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

/**
 * RFC 4648 §5 base64url of the UTF-8 bytes of `text`, without "=" padding, so the
 * result only uses [A-Za-z0-9_-] and is always a valid WebSocket subprotocol token.
 */
export function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** ws:// or wss:// URL of the event stream on this origin (never carries the admin key). */
export function eventStreamUrl(loc: Location = window.location): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}/api/ws`;
}

/**
 * WebSocket subprotocols for the event stream: "llm-manager", plus the admin key as
 * "bearer.<base64url(key)>" when one is set (browsers cannot set an Authorization
 * header on a WebSocket, and a ?token= query would land in access logs and history).
 */
export function eventStreamProtocols(adminKey: string): string[] {
  return adminKey
    ? [EVENT_STREAM_PROTOCOL, BEARER_PROTOCOL_PREFIX + base64url(adminKey)]
    : [EVENT_STREAM_PROTOCOL];
}
