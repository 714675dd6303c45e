import {
  AxiosError,
  AxiosHeaders,
  type AxiosAdapter,
  type InternalAxiosRequestConfig,
} from "axios";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setAdminKey } from "./auth";
import {
  base64url,
  createKey,
  errorMessage,
  eventStreamProtocols,
  eventStreamUrl,
  getLogs,
  getUsageSummary,
  http,
  listKeys,
  revokeKey,
  startModel,
} from "./client";

type Reply = { status: number; data: unknown };
let calls: InternalAxiosRequestConfig[] = [];
let reply: (cfg: InternalAxiosRequestConfig) => Reply;
const original = http.defaults.adapter;

const fakeAdapter: AxiosAdapter = async (config) => {
  calls.push(config);
  const r = reply(config);
  const response = {
    data: r.data,
    status: r.status,
    statusText: String(r.status),
    headers: {},
    config,
  };
  if (r.status >= 400) {
    throw new AxiosError("Request failed", "ERR_BAD_RESPONSE", config, null, response);
  }
  return response;
};

beforeEach(() => {
  calls = [];
  reply = () => ({ status: 200, data: {} });
  http.defaults.adapter = fakeAdapter;
});
afterEach(() => {
  http.defaults.adapter = original;
});

describe("api client", () => {
  it("sends the admin key as a bearer token when one is set", async () => {
    reply = () => ({ status: 202, data: { model: "m", state: "starting" } });
    await startModel("m");
    expect(calls[0]?.headers.get("Authorization")).toBeUndefined();
    setAdminKey("secret-1");
    const res = await startModel("m");
    expect(res).toEqual({ model: "m", state: "starting" });
    expect(calls[1]?.url).toBe("/api/models/m/start");
    expect(calls[1]?.method).toBe("post");
    expect((calls[1]?.headers as AxiosHeaders).get("Authorization")).toBe("Bearer secret-1");
    setAdminKey("");
  });

  it("encodes model names in paths and passes query params", async () => {
    reply = () => ({
      status: 200,
      data: { model: "a/b", lines: [{ ts: 1, stream: "stdout", line: "hi" }] },
    });
    const lines = await getLogs("a/b", 50);
    expect(calls[0]?.url).toBe("/api/logs/a%2Fb");
    expect(calls[0]?.params).toEqual({ lines: 50 });
    expect(lines).toHaveLength(1);
  });

  it("returns null for usage when the server has no accounting (404)", async () => {
    reply = () => ({
      status: 404,
      data: { error: { message: "not found", type: "x", code: 404 } },
    });
    await expect(getUsageSummary(7)).resolves.toBeNull();
    expect(calls[0]?.params).toEqual({ days: 7 });
  });

  it("returns null for keys when key management is off (404)", async () => {
    reply = () => ({ status: 404, data: { error: { message: "no route" } } });
    await expect(listKeys()).resolves.toBeNull();
  });

  it("normalizes a usage summary with gaps or an ISO time per day", async () => {
    reply = () => ({
      status: 200,
      data: {
        total_requests: 3,
        by_day: [{ time: "2026-11-24T00:00:00+00:00", requests: 3, total_tokens: 39, cost: 0.01 }],
      },
    });
    const s = await getUsageSummary();
    expect(s?.by_day).toEqual([{ day: "2026-11-24", requests: 3, total_tokens: 39, cost: 0.01 }]);
    expect(s?.by_model).toEqual([]);
    expect(s?.currency).toBe("USD");
    expect(s?.forecast.month_end_forecast).toBe(0);
  });

  it("rethrows other usage errors", async () => {
    reply = () => ({ status: 500, data: { error: { message: "boom" } } });
    await expect(getUsageSummary()).rejects.toBeInstanceOf(AxiosError);
  });

  it("creates and revokes keys", async () => {
    reply = (cfg) =>
      cfg.method === "post"
        ? { status: 200, data: { id: "k1", name: "ci", key: "sk-abc", prefix: "sk-a", models: [] } }
        : { status: 200, data: { id: "k1", revoked: true } };
    const created = await createKey("ci");
    expect(JSON.parse(String(calls[0]?.data))).toEqual({ name: "ci" });
    expect(created.key).toBe("sk-abc");
    await createKey("ci2", ["m1"]);
    expect(JSON.parse(String(calls[1]?.data))).toEqual({ name: "ci2", models: ["m1"] });
    await expect(revokeKey("k1")).resolves.toEqual({ id: "k1", revoked: true });
    expect(calls[2]?.method).toBe("delete");
    expect(calls[2]?.url).toBe("/api/keys/k1");
  });

  it("extracts the OpenAI-style error message", async () => {
    reply = () => ({
      status: 409,
      data: { error: { message: "model does not fit", type: "conflict", code: "no_fit" } },
    });
    const err = await startModel("big").catch((e: unknown) => e);
    expect(errorMessage(err)).toBe("model does not fit (HTTP 409)");
  });

  it("explains a bare 401", async () => {
    reply = () => ({ status: 401, data: "" });
    const err = await startModel("m").catch((e: unknown) => e);
    expect(errorMessage(err)).toMatch(/admin key/);
  });

  it("describes non-axios errors", () => {
    expect(errorMessage(new Error("x"))).toBe("x");
    expect(errorMessage("y")).toBe("y");
  });

  it("builds the event stream URL without any credentials", () => {
    const loc = { protocol: "https:", host: "example.test:8443" } as Location;
    expect(eventStreamUrl(loc)).toBe("wss://example.test:8443/api/ws");
    expect(eventStreamUrl({ protocol: "http:", host: "h" } as Location)).toBe("ws://h/api/ws");
    // the default is this page's origin (jsdom: http://localhost:3000)
    expect(eventStreamUrl()).toBe(`ws://${window.location.host}/api/ws`);
    expect(eventStreamUrl()).not.toMatch(/token|\?/);
  });

  it("base64url-encodes UTF-8 without padding (RFC 4648 §5)", () => {
    expect(base64url("")).toBe("");
    expect(base64url("a")).toBe("YQ"); // "YQ==" in plain base64
    expect(base64url("ab")).toBe("YWI"); // "YWI="
    expect(base64url("abc")).toBe("YWJj");
    // bytes 3C 3C 3F 3F 3F 3E 3E give "PDw/Pz8+Pg==" in plain base64
    expect(base64url("<<???>>")).toBe("PDw_Pz8-Pg");
    // non-ASCII: 2-byte Cyrillic and a 4-byte emoji ("0LrQu9GO0Yct8J+UkQ==" in plain base64)
    expect(base64url("ключ-🔑")).toBe("0LrQu9GO0Yct8J-UkQ");
    expect(base64url("sk-admin-éè")).toBe("c2stYWRtaW4tw6nDqA");
  });

  it("offers the admin key as a bearer subprotocol, never in the URL", () => {
    expect(eventStreamProtocols("")).toEqual(["llm-manager"]);
    expect(eventStreamProtocols("secret-1")).toEqual(["llm-manager", "bearer.c2VjcmV0LTE"]);
    expect(eventStreamProtocols("<<???>>")).toEqual(["llm-manager", "bearer.PDw_Pz8-Pg"]);
    expect(eventStreamProtocols("ключ-🔑")).toEqual(["llm-manager", "bearer.0LrQu9GO0Yct8J-UkQ"]);
    // every entry is an RFC 7230 token, as the WebSocket constructor requires
    for (const key of ["a b", 'x,y;z="q"', "ключ-🔑", "+/="]) {
      for (const p of eventStreamProtocols(key))
        expect(p).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
    }
  });
});
