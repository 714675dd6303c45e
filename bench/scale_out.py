"""Scale-out benchmark (issue 16): one model on 4 instances against the same model on 1, side by side in one run.

    python bench/scale_out.py [--requests 64] [--json bench/output/scale_out.json]

One manager (pinned to core 0, alone) serves four models, each with ``max_concurrency`` 1 per instance, so one
instance is a real bottleneck (like llama-server with ``--parallel 1``); their fake backends run on core 1 with
the load generator:
  * ``slow-1`` / ``slow-4``: 1 or 4 instances of a backend pacing 32 tokens at 50 tokens/s (0.64 s a request);
    closed loop at concurrency 16, the same request count for both: req/s, tokens/s (from the manager's usage
    rows), latency, how the requests spread over the instances;
  * ``fast-1`` / ``fast-4``: 1 or 4 instances of a ``--fast`` backend (answers in ~0 ms); concurrency 1 through
    the manager and directly to the instance the manager routes to (instance 0: every tie goes to it), the four
    columns alternated over repeated runs: the proxy's added latency (p50, p95), with and without instances.
Prints one table with the 4-to-1 ratio, the load average at start and end, and a PASS/MISS line per goal:
throughput at c=16 at least 3x, added latency at c=1 unchanged within the noise of the repeated runs.
Every load run is bounded by a request count and a wall-clock deadline; the whole run takes about two minutes.
"""

from __future__ import annotations

import argparse
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
    BENCH,
    CLIENT_CORE,
    HAVE_TASKSET,
    MANAGER_CORE,
    PY,
    ROOT,
    chat_body,
    free_port,
    http_get,
    merge_runs,
    pct,
    pin,
    stop_proc,
    wait_http,
)

CONCURRENCY = 16
TOKENS, TPS = 32, 50.0  # a throttled request: 32 tokens at 50 tokens/s = 0.64 s of one instance's only slot
INSTANCES = 4
# loadgen.py with p95 among its percentiles (it reports p50/p90/p99/p99.9 by default); still its own process
LOADGEN_P95 = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import loadgen; "
               "loadgen.percentiles.__defaults__ = ((50, 90, 95, 99, 99.9),); sys.exit(loadgen.main(sys.argv[1:]))")


def load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def loadgen(url: str, body: str, concurrency: int, count: int, duration: float, warmup: int) -> dict[str, Any]:
    """One closed-loop run of loadgen.py (pinned to the client core), bounded by count and time."""
    argv = pin(CLIENT_CORE, [PY, "-c", LOADGEN_P95, "latency", "--url", url, "--body", body, "--concurrency",
                             str(concurrency), "--count", str(count), "--duration", str(duration), "--warmup",
                             str(warmup), "--timeout", str(duration)])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return {"ok": 0, "errors": 1, "error_samples": [f"load generator passed its {duration + 60:g} s bound"]}
    if done.returncode != 0 or not done.stdout.strip():
        return {"ok": 0, "errors": 1, "error_samples": [done.stderr[-500:]]}
    return json.loads(done.stdout.strip().splitlines()[-1])


class ScaleManager:
    """``llm-manager serve`` with the four models above, every instance started (``min_instances``)."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        backend = [PY, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}", "--model", "${MODEL}", "--quiet"]
        models = {}
        for name, n, extra in (("slow-1", 1, ["--tokens-per-second", str(TPS)]),
                               (f"slow-{INSTANCES}", INSTANCES, ["--tokens-per-second", str(TPS)]),
                               ("fast-1", 1, ["--fast"]), (f"fast-{INSTANCES}", INSTANCES, ["--fast"])):
            ports = [free_port() for _ in range(n)]
            models[name] = {"aliases": [], "mode": "Chat", "port": ports[0], "ports": ports, "max_instances": n,
                            "min_instances": n, "max_concurrency": 1, "max_queue": 1000, "auto_start": False,
                            "command": pin(CLIENT_CORE, backend + extra),
                            "gpu": {"required_devices": [], "memory_mb": {}}}
        doc = {"program": {"host": "127.0.0.1", "port": self.port, "alive_time": 0, "monitor_interval": 0.5},
               **models}
        config = tmp / "config.json"
        config.write_text(json.dumps(doc, indent=2))
        self.log_path = tmp / "manager.log"
        self._log = self.log_path.open("w")
        argv = pin(MANAGER_CORE, [PY, "-m", "llm_manager.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                                  "--port", str(self.port), "--no-dashboard", "--data-dir", str(tmp / "data")])
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_http(self.port, "/api/health", 60, self.proc, poll=0.05)
            self.wait_all_ready(list(models), 90)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_path.read_text()[-3000:]}") from None

    def models(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in json.loads(http_get(self.port, "/api/models-info")[1])["models"]}

    def wait_all_ready(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            models = self.models()
            if all(i["state"] == "ready" for n in names for i in models[n]["instances"]):
                return
            if time.monotonic() > deadline:
                states = {n: [i["state"] for i in models[n]["instances"]] for n in names}
                raise RuntimeError(f"instances not ready within {timeout:g} s: {states}")
            time.sleep(0.1)

    def usage(self, model: str, since: float) -> list[dict[str, Any]]:
        """The manager's usage rows of ``model`` finished after ``since`` (epoch seconds)."""
        rows = json.loads(http_get(self.port, "/api/usage/recent?limit=10000", timeout=10)[1])["requests"]
        return [r for r in rows if r["model"] == model and r["ts"] >= since]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def stop(self) -> None:
        stop_proc(self.proc, 20)
        self._log.close()


# ---------------------------------------------------------------- measurements


def throughput(mgr: ScaleManager, model: str, count: int, duration: float) -> dict[str, Any]:
    """Closed loop at c=16 on a throttled model; tokens and instances from the manager's own usage rows."""
    since = time.time()
    r = loadgen(mgr.url(), chat_body(model, max_tokens=TOKENS), CONCURRENCY, count, duration, warmup=0)
    rows = mgr.usage(model, since)
    elapsed = r.get("elapsed_s") or float("nan")
    r["tokens_per_s"] = sum(x["completion_tokens"] for x in rows if x["status"] == 200) / elapsed
    r["served_by"] = {i: sum(1 for x in rows if x["instance"] == i) for i in sorted({x["instance"] for x in rows})}
    r["queue_ms_p50"] = statistics.median(x["queue_ms"] for x in rows) if rows else None
    return r


def added_latency(mgr: ScaleManager, count: int, reps: int, duration: float) -> dict[str, Any]:
    """c=1 through the manager and directly to the instance it routes to, for fast-1 and fast-4, alternated."""
    models = mgr.models()
    columns = {}
    for name in ("fast-1", f"fast-{INSTANCES}"):
        port = models[name]["instances"][0]["port"]
        columns[f"{name} direct"] = (f"http://127.0.0.1:{port}/v1/chat/completions", name)
        columns[f"{name} manager"] = (mgr.url(), name)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in columns}
    for rep in range(reps):
        for col, (url, model) in columns.items():
            since = time.time()
            r = loadgen(url, chat_body(model), 1, count, duration, warmup=20)
            if col.endswith("manager"):
                r["served_by"] = sorted({x["instance"] for x in mgr.usage(model, since)})
            runs[col].append(r)
            print(f"  c=1  {col:<15} rep {rep + 1}: p50 {pct(r, 'latency_ms', 'p50') or 0:.3f} p95 "
                  f"{pct(r, 'latency_ms', 'p95') or 0:.3f} ms  {r.get('rps', 0):,.0f} req/s  errors {r.get('errors')}"
                  + (f"  served by {r['served_by']}" if "served_by" in r else "")
                  + (f"  e.g. {r['error_samples'][0]}" if r.get("error_samples") else ""), flush=True)
    out: dict[str, Any] = {col: merge_runs(rs) for col, rs in runs.items()}
    for name in ("fast-1", f"fast-{INSTANCES}"):
        out[f"{name} manager"]["served_by"] = [r.get("served_by", []) for r in runs[f"{name} manager"]]
    for name in ("fast-1", f"fast-{INSTANCES}"):  # the added latency of each repetition: its spread is the run's noise
        pairs = list(zip(runs[f"{name} direct"], runs[f"{name} manager"], strict=True))
        out[f"{name} added"] = {p: [pct(m, "latency_ms", p) - pct(d, "latency_ms", p) for d, m in pairs
                                    if d.get("ok") and m.get("ok")]  # a failed run has no figures
                                for p in ("p50", "p95")}
    return out


# ---------------------------------------------------------------- report


def fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def print_table(res: dict[str, Any]) -> None:
    t1, t4, lat = res["slow-1"], res[f"slow-{INSTANCES}"], res["latency"]
    rows: list[tuple[str, Any, Any, str]] = []

    def ratio(a: Any, b: Any) -> str:
        return f"{b / a:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""

    def add(label: str, a: Any, b: Any, nd: int = 2, with_ratio: bool = False) -> None:
        rows.append((label, fmt(a, nd), fmt(b, nd), ratio(a, b) if with_ratio else ""))

    add(f"c={CONCURRENCY} throughput: req/s", t1.get("rps"), t4.get("rps"), with_ratio=True)
    add(f"c={CONCURRENCY} throughput: tokens/s", t1.get("tokens_per_s"), t4.get("tokens_per_s"), 1, with_ratio=True)
    add(f"c={CONCURRENCY} latency p50 ms", pct(t1, "latency_ms", "p50"), pct(t4, "latency_ms", "p50"), 0)
    add(f"c={CONCURRENCY} latency p95 ms", pct(t1, "latency_ms", "p95"), pct(t4, "latency_ms", "p95"), 0)
    add(f"c={CONCURRENCY} queue wait p50 ms", t1.get("queue_ms_p50"), t4.get("queue_ms_p50"), 0)
    add(f"c={CONCURRENCY} ok / errors", f"{t1.get('ok')} / {t1.get('errors')}", f"{t4.get('ok')} / {t4.get('errors')}")
    add(f"c={CONCURRENCY} requests per instance", " ".join(map(str, t1.get("served_by", {}).values())) or "-",
        " ".join(map(str, t4.get("served_by", {}).values())) or "-")
    for p in ("p50", "p95"):
        add(f"c=1 direct {p} ms", pct(lat["fast-1 direct"], "latency_ms", p), pct(lat["fast-4 direct"], "latency_ms", p),
            3)
        add(f"c=1 manager {p} ms", pct(lat["fast-1 manager"], "latency_ms", p),
            pct(lat["fast-4 manager"], "latency_ms", p), 3)
        a1, a4 = (median(lat[f"fast-{n} added"][p]) for n in (1, INSTANCES))
        add(f"c=1 added {p} ms (median of runs)", a1, a4, 3)
        add(f"c=1 added {p} ms, runs' range", spread(lat["fast-1 added"][p]), spread(lat[f"fast-{INSTANCES} added"][p]))
    heads = ("", "1 instance", f"{INSTANCES} instances", "ratio")
    width = max(len(r[0]) for r in rows) + 2
    colw = [max(len(heads[i + 1]), *(len(r[i + 1]) for r in rows)) + 2 for i in range(3)]
    print("\n" + heads[0].ljust(width) + "".join(h.rjust(w) for h, w in zip(heads[1:], colw, strict=True)))
    for label, *cells in rows:
        print(label.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, colw, strict=True)))
    print(f"(throughput: slow-1 vs slow-{INSTANCES}, {TOKENS} tokens at {TPS:g} tokens/s, max_concurrency 1 per "
          f"instance; c=1: fast-1 vs fast-{INSTANCES}, added = manager minus direct of the same repetition)")


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} .. {max(values):.3f}" if values else "-"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def verdicts(res: dict[str, Any]) -> list[str]:
    t1, t4, lat = res["slow-1"], res[f"slow-{INSTANCES}"], res["latency"]
    out = []
    r = t4.get("rps", 0) / t1["rps"] if t1.get("rps") else 0.0
    errs = t1.get("errors", 0) + t4.get("errors", 0)
    out.append(f"throughput at c={CONCURRENCY}: {INSTANCES} instances {r:.2f}x one (goal >= 3x, ideal {INSTANCES}x; "
               f"errors {errs})  {'PASS' if r >= 3 and errs == 0 else 'MISS'}")
    for name in ("fast-1", f"fast-{INSTANCES}"):  # direct is the control only if the manager used that instance
        others = {i for r in lat[f"{name} manager"]["served_by"] for i in r} - {name}
        if others:
            out.append(f"note: at c=1 {name} was also served by {sorted(others)}: its direct column (instance 0) "
                       "is not the exact control")
    for p in ("p50", "p95"):
        one, many = lat["fast-1 added"][p], lat[f"fast-{INSTANCES} added"][p]
        if not one or not many:
            out.append(f"added latency c=1 {p}: no figures (the c=1 runs failed)  MISS")
            continue
        diff = statistics.median(many) - statistics.median(one)
        noise = max(max(one) - min(one), max(many) - min(many), 0.05)  # the runs' own spread (at least 50 us)
        out.append(f"added latency c=1 {p}: {INSTANCES} instances {diff:+.3f} ms against one (noise: the runs' "
                   f"widest range {noise:.3f} ms)  {'PASS' if abs(diff) <= noise else 'MISS'}")
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=64,
                   help=f"requests per throughput run at c={CONCURRENCY} (default 64: about 41 s on one instance)")
    p.add_argument("--latency-requests", type=int, default=1000, help="requests per c=1 run (default 1000)")
    p.add_argument("--reps", type=int, default=3, help="c=1 repetitions, the four columns alternated (default 3)")
    p.add_argument("--json", help="also write every figure to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    start_load = load()
    print(f"machine: {cores} cores, Python {sys.version.split()[0]}, load average {start_load:.2f} at start; "
          + (f"manager pinned to core {MANAGER_CORE}, load generator and backends to core {CLIENT_CORE}"
             if HAVE_TASKSET else "no taskset or one core: nothing pinned"), flush=True)
    res: dict[str, Any] = {"meta": {"cores": cores, "python": sys.version.split()[0], "load_start": start_load,
                                    "tokens": TOKENS, "tokens_per_second": TPS, "concurrency": CONCURRENCY}}
    tmp = Path(tempfile.mkdtemp(prefix="llm-manager-bench-scale-"))
    mgr = ScaleManager(tmp)
    try:
        # the bound: the ideal time on one instance (count x 0.64 s) with room for a slow machine
        bound = args.requests * TOKENS / TPS * 1.5 + 10
        for model in ("slow-1", f"slow-{INSTANCES}"):
            r = res[model] = throughput(mgr, model, args.requests, bound)
            print(f"  c={CONCURRENCY} {model}: {r.get('rps', 0):.2f} req/s, {r.get('tokens_per_s', 0):.1f} tokens/s, "
                  f"p50 {pct(r, 'latency_ms', 'p50') or 0:,.0f} ms, errors {r.get('errors')}, "
                  f"served by {r.get('served_by')}, load {load():.2f}"
                  + (f"  e.g. {r['error_samples'][0]}" if r.get("error_samples") else ""), flush=True)
        res["latency"] = added_latency(mgr, args.latency_requests, args.reps, 6.0)
    finally:
        mgr.stop()
    res["meta"]["load_end"] = load()
    print_table(res)
    print(f"load average: {start_load:.2f} at start, {res['meta']['load_end']:.2f} at the end "
          f"({cores} cores; above about 1 the c=1 tails are not worth much)\n")
    for line in verdicts(res):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
