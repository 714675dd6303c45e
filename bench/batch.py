"""Batches API throughput: N embedding requests as one batch vs the same N sent directly at the model's concurrency.

    python bench/batch.py [--lines 10000] [--repeats 2] [--concurrency 4] [--delay-ms 10]
                          [--default-share-lines N] [--json bench/output/batch.json]
    python bench/batch.py --quick          # 1,000 lines

Issue 21's figure: a 10,000-line embedding batch's throughput is within 10 % of the same requests sent directly
at the model's concurrency.

One manager (``llm-manager serve``, pinned to core 0 like every bench here) serves Embedding models backed by
the fake llama-server, pinned to core 1 beside this process and the load generator. Each backend answers every
embeddings request after a fixed ``--delay-ms`` (a sleep: the model, not Python, sets the pace), and the model's
``max_concurrency`` is ``--concurrency`` N, so the ceiling for both columns is N / delay requests/s:

  (a) direct: ``bench/loadgen.py`` holds N keep-alive connections to the manager's /v1/embeddings and sends the
      N requests back to back (closed loop; the manager's Gate lets all N run at once);
  (b) batch: the same N requests as one JSONL file, uploaded to /v1/files, then /v1/batches; timed from the
      create call to the first poll that sees ``completed`` (every 10 ms near the end, every 250 ms before).

The two columns alternate, ``--repeats`` runs each (A B A B), and the table gives the medians: on a shared
2-core machine one run of either moves by 10-20 % with other processes' load, the size of the target itself.

Batch lines may hold only ``batch_share`` of a model's ``max_concurrency`` (default 0.5, so that interactive
requests find room): ``bench-embed`` sets ``batch_share: 1.0`` so the batch may use all N slots, as the direct
client does; that is the fair comparison and the PASS/MISS line is about it. ``bench-embed-default`` keeps the
default share (0.5: N/2 slots) and runs a smaller batch (``--default-share-lines``, 0 to skip), to show what the
default costs: about half the throughput, by design.

``--backend`` is not for you: it is how the manager launches the delayed fake backend (this file, again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    CLIENT_CORE,
    MANAGER_CORE,
    PY,
    ROOT,
    cpu_s,
    free_port,
    http_post,
    loadgen,
    pin,
    stop_proc,
    wait_http,
)

FAIR, DEFAULT = "bench-embed", "bench-embed-default"
TARGET = 0.90  # the batch's req/s at least 90 % of direct's


def load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def text(i: int) -> str:
    return f"benchmark text {i:06d}"  # the same size for every line and for the direct body


def embed_body(model: str, i: int) -> dict[str, Any]:
    return {"model": model, "input": text(i)}


# ---------------------------------------------------------------- the delayed backend (run by the manager)


def backend_main(argv: list[str]) -> int:
    """The fake llama-server, with a fixed sleep before every embeddings answer."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--delay", type=float, required=True, help="seconds per embeddings request")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from llm_manager.testing import fake_backend

    handle = fake_backend.EmbeddingsHandler.handle

    async def delayed(self: Any, body: dict[str, Any]) -> None:
        await asyncio.sleep(args.delay)
        await handle(self, body)

    fake_backend.EmbeddingsHandler.handle = delayed  # type: ignore[method-assign]
    return fake_backend.main(["--port", args.port, "--model", args.model, "--fast", "--quiet"])


# ---------------------------------------------------------------- the manager


def start_manager(tmp: Path, concurrency: int, delay: float) -> tuple[subprocess.Popen, int]:
    port = free_port()

    def model(share: float | None) -> dict[str, Any]:
        command = pin(CLIENT_CORE, [PY, str(Path(__file__).resolve()), "--backend", "--port", "${PORT}",
                                    "--model", "${MODEL}", "--delay", str(delay)])
        m: dict[str, Any] = {"mode": "Embedding", "port": free_port(), "command": command, "auto_start": False,
                             "max_concurrency": concurrency, "cache": False,
                             "gpu": {"required_devices": [], "memory_mb": {}}}
        if share is not None:
            m["batch_share"] = share
        return m

    doc = {"program": {"host": "127.0.0.1", "port": port, "alive_time": 0, "access_log": False},
           FAIR: model(1.0), DEFAULT: model(None)}
    (tmp / "config.json").write_text(json.dumps(doc, indent=2))
    argv = pin(MANAGER_CORE, [PY, "-m", "llm_manager.cli", "serve", "--config", str(tmp / "config.json"),
                              "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                              "--data-dir", str(tmp / "data")])
    log = (tmp / "manager.log").open("w")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_http(port, "/api/health", 60, proc, poll=0.05)
        for name in (FAIR, DEFAULT):
            status, body, _ = http_post(port, f"/api/models/{name}/start?wait=1")
            if status != 200:
                raise RuntimeError(f"starting {name}: HTTP {status} {body[:300]!r}")
    except Exception as exc:
        stop_proc(proc, 20)
        raise RuntimeError(f"{exc}\n{(tmp / 'manager.log').read_text()[-3000:]}") from None
    return proc, port


# ---------------------------------------------------------------- the two columns


def direct(port: int, model: str, concurrency: int, count: int, bound: float) -> dict[str, Any]:
    return loadgen("latency", "--url", f"http://127.0.0.1:{port}/v1/embeddings",
                   "--body", json.dumps(embed_body(model, 0)), "--concurrency", str(concurrency),
                   "--count", str(count), "--duration", str(bound), "--warmup", "5", timeout=bound + 60)


def batch(port: int, model: str, lines: int, bound: float) -> dict[str, Any]:
    """Upload, create, poll until a final status; seconds from the create call to ``completed``.

    Each poll counts the batch's lines in the manager (a query over all of them), so it polls every 250 ms until
    95 % of the lines are done, then every 10 ms: the end is seen within 10 ms without loading the manager."""
    import httpx

    data = b"".join(json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": "/v1/embeddings",
                                "body": embed_body(model, i)}).encode() + b"\n" for i in range(lines))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, trust_env=False) as client:
        t_up = time.perf_counter()
        up = client.post("/v1/files", files={"file": ("input.jsonl", data)}, data={"purpose": "batch"})
        up.raise_for_status()
        t0 = time.perf_counter()
        made = client.post("/v1/batches", json={"input_file_id": up.json()["id"], "endpoint": "/v1/embeddings",
                                                "completion_window": "24h"})
        made.raise_for_status()
        t_created = time.perf_counter()
        batch_id = made.json()["id"]
        deadline = t0 + bound
        while True:
            b = client.get(f"/v1/batches/{batch_id}").json()
            if b["status"] in ("completed", "failed", "expired", "cancelled") or time.perf_counter() > deadline:
                break
            done = b["request_counts"]["completed"] + b["request_counts"]["failed"]
            time.sleep(0.01 if done >= 0.95 * lines else 0.25)
        t1 = time.perf_counter()
        if b["status"] not in ("completed", "failed", "expired", "cancelled"):  # over its bound: stop it
            client.post(f"/v1/batches/{batch_id}/cancel")
    counts = b["request_counts"]
    elapsed = t1 - t0
    return {"status": b["status"], "ok": counts["completed"], "errors": counts["failed"],
            "total": counts["total"], "upload_s": t0 - t_up, "create_s": t_created - t0, "elapsed_s": elapsed,
            "rps": counts["completed"] / elapsed if elapsed else 0.0}


def measured(fn: Any, pid: int, *args: Any) -> dict[str, Any]:
    before = cpu_s([pid])
    result = fn(*args)
    result["manager_cpu_ms"] = (cpu_s([pid]) - before) * 1000 / max(1, result.get("ok") or 0)
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts added; seconds, req/s and CPU per request the medians of the runs; the rest from the first."""
    out = dict(runs[0])
    for key in ("ok", "errors"):
        out[key] = sum(r.get(key) or 0 for r in runs)
    for key in ("elapsed_s", "rps", "manager_cpu_ms", "upload_s", "create_s"):
        if key in out:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--backend"]:
        return backend_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=10_000, help="requests in each column (default 10,000)")
    p.add_argument("--quick", action="store_true", help="1,000 lines (and 500 at the default share)")
    p.add_argument("--concurrency", type=int, default=4, help="the model's max_concurrency N (default 4)")
    p.add_argument("--delay-ms", type=float, default=10.0,
                   help="the backend's time per embeddings request (default 10: N=4 -> 400 req/s ceiling)")
    p.add_argument("--default-share-lines", type=int, default=None,
                   help="lines of the extra batch at the default batch_share 0.5 (default lines/5; 0 skips it)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each column, alternated (default 2)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    if args.quick:
        args.lines = 1000
    extra = args.lines // 5 if args.default_share_lines is None else args.default_share_lines
    n, delay = args.concurrency, args.delay_ms / 1000
    ceiling = n / delay
    bound = max(60.0, 10 * args.lines / ceiling)  # every phase is bounded; 10x the ideal time
    loads = [load()]
    runs: dict[str, list[dict[str, Any]]] = {"direct": [], "batch": [], "batch_default_share": []}
    with tempfile.TemporaryDirectory(prefix="llm-manager-bench-batch-") as tmp:
        proc, port = start_manager(Path(tmp), n, delay)
        try:
            direct(port, FAIR, n, 200, 30)  # warm-up: pools, the Gate, the store's first transactions
            batch(port, FAIR, 100, 30)
            for _ in range(args.repeats):  # alternated (A B A B): drift in the machine's load hits both alike
                runs["direct"].append(measured(direct, proc.pid, port, FAIR, n, args.lines, bound))
                loads.append(load())
                runs["batch"].append(measured(batch, proc.pid, port, FAIR, args.lines, bound))
                loads.append(load())
            if extra:
                runs["batch_default_share"].append(measured(batch, proc.pid, port, DEFAULT, extra, bound))
                loads.append(load())
        finally:
            stop_proc(proc, 20)
    results = {k: median_run(v) for k, v in runs.items() if v}
    d, b = results["direct"], results["batch"]
    ratio = b["rps"] / d["rps"] if d["rps"] else 0.0
    print(f"embedding batch vs direct: {args.lines} requests each, {args.repeats} runs each (alternated; medians); "
          f"model max_concurrency {n}, backend {args.delay_ms:g} ms per request (ceiling {ceiling:.0f} req/s); "
          f"{os.cpu_count()} CPUs")
    print("load average (1, 5, 15 min): " + " -> ".join(f"{x[0]:.2f} {x[1]:.2f} {x[2]:.2f}" for x in loads))
    print(f"batch: model '{FAIR}' with batch_share 1.0 (all {n} slots, like the direct client); "
          f"default share 0.5 -> {max(1, int(n * 0.5))} slots; response cache off on both")
    print(f"{'':38}{'ok':>7}{'err':>5}{'seconds':>9}{'req/s':>9}{'of ceiling':>11}{'mgr CPU ms/req':>16}"
          "  req/s per run")
    rows = [(f"(a) direct, {n} connections", "direct"), ("(b) batch, batch_share 1.0", "batch")]
    if "batch_default_share" in results:
        rows.append((f"(c) batch, default share ({extra} lines)", "batch_default_share"))
    for name, key in rows:
        r = results[key]
        print(f"{name:38}{r.get('ok', 0):>7}{r.get('errors', 0):>5}{r.get('elapsed_s', 0):>9.2f}"
              f"{r.get('rps', 0):>9.1f}{r.get('rps', 0) / ceiling:>11.0%}{r['manager_cpu_ms']:>16.3f}  "
              + " ".join(f"{x['rps']:.0f}" for x in runs[key]))
    print(f"batch upload {b['upload_s']:.2f} s, create call {b['create_s']:.2f} s (inside the batch's seconds); "
          f"status {' '.join(x['status'] for x in runs['batch'])}")
    clean = all(x["status"] == "completed" and not x["errors"] for x in runs["batch"]) and not d["errors"]
    verdict = "PASS" if ratio >= TARGET and clean else "MISS"
    print(f"{verdict}: batch / direct req/s = {ratio:.3f} (target >= {TARGET:.2f})")
    for x in runs["direct"]:
        if x.get("error_samples"):
            print("direct errors:", x["error_samples"], file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ts": time.time(), "args": {k: str(v) for k, v in vars(args).items()},
                                         "load": loads, "ratio": ratio, "results": results,
                                         "runs": runs}, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
