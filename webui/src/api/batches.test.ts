import { AxiosError, type AxiosAdapter, type InternalAxiosRequestConfig } from "axios";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { batch } from "../test/batchFixtures";
import { setAdminKey } from "./auth";
import { cancelBatch, errorMessage, getBatch, getFileContent, http, listBatches } from "./client";

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

function page(ids: string[], hasMore: boolean) {
  return {
    object: "list",
    data: ids.map((id) => batch({ id })),
    first_id: ids[0] ?? null,
    last_id: ids[ids.length - 1] ?? null,
    has_more: hasMore,
  };
}

describe("batches client", () => {
  it("reads one page with the admin key", async () => {
    setAdminKey("admin-1");
    reply = () => ({ status: 200, data: page(["batch_b", "batch_a"], false) });
    const res = await listBatches(50);
    expect(res?.batches.map((b) => b.id)).toEqual(["batch_b", "batch_a"]);
    expect(res?.hasMore).toBe(false);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe("/v1/batches");
    expect(calls[0]?.params).toEqual({ limit: 50 });
    expect(calls[0]?.headers.get("Authorization")).toBe("Bearer admin-1");
  });

  it("follows the after cursor up to the maximum", async () => {
    reply = (cfg) => {
      const after = (cfg.params as { after?: string }).after;
      if (!after) return { status: 200, data: page(["batch_c", "batch_b"], true) };
      return { status: 200, data: page(["batch_a"], true) };
    };
    const res = await listBatches(3);
    expect(res?.batches.map((b) => b.id)).toEqual(["batch_c", "batch_b", "batch_a"]);
    expect(res?.hasMore).toBe(true);
    expect(calls.map((c) => c.params)).toEqual([{ limit: 3 }, { limit: 1, after: "batch_b" }]);
  });

  it("caps a page at the server's limit of 100", async () => {
    reply = () => ({ status: 200, data: page(["batch_a"], false) });
    await listBatches(250);
    expect(calls[0]?.params).toEqual({ limit: 100 });
  });

  it("answers null when the server has no Batches API", async () => {
    reply = () => ({ status: 404, data: { error: { message: "not enabled" } } });
    expect(await listBatches()).toBeNull();
  });

  it("reads and cancels one batch", async () => {
    reply = (cfg) => ({
      status: 200,
      data: batch({ id: "batch_x", status: cfg.method === "post" ? "cancelling" : "in_progress" }),
    });
    expect((await getBatch("batch_x")).status).toBe("in_progress");
    expect((await cancelBatch("batch_x")).status).toBe("cancelling");
    expect(calls.map((c) => [c.method, c.url])).toEqual([
      ["get", "/v1/batches/batch_x"],
      ["post", "/v1/batches/batch_x/cancel"],
    ]);
  });

  it("fetches file content as a blob", async () => {
    const blob = new Blob(["{}\n"]);
    reply = () => ({ status: 200, data: blob });
    expect(await getFileContent("file-out")).toBe(blob);
    expect(calls[0]?.url).toBe("/v1/files/file-out/content");
    expect(calls[0]?.responseType).toBe("blob");
  });

  it("decodes a JSON error body that came back as a blob", async () => {
    reply = () => ({
      status: 404,
      data: new Blob([JSON.stringify({ error: { message: "no file 'file-x'" } })]),
    });
    const err = await getFileContent("file-x").catch((e: unknown) => e);
    expect(errorMessage(err)).toBe("no file 'file-x' (HTTP 404)");
  });
});
