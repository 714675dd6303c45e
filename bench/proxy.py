"""Gateway benchmark: a direct call to the backend vs through llm-manager vs through LiteLLM's proxy.

    python bench/proxy.py [--quick] [--with-litellm] [--json bench/output/proxy.json]

One run starts everything on 127.0.0.1 and prints one table:
  * fake backends (``llm_manager.testing.fake_backend --fast --quiet``), launched *by the manager* from
    its config (pinned to core 1 with ``taskset``), so "direct" and "through the manager" hit the very
    same process; a second backend paces streamed tokens for the 500-stream test;
  * the manager (``llm_manager.cli serve --no-dashboard``) pinned to core 0, alone;
  * the load generator (``bench/loadgen.py``, raw-socket HTTP/1.1 keep-alive) in its own process on core 1;
  * with ``--with-litellm``, LiteLLM's proxy (installed into ``bench/.venv-litellm`` on first use) pinned
    to core 0 too, against the same backends.
Then: non-streaming latency and req/s at concurrency 1, 16, 64; 500 concurrent SSE streams (TTFT,
gap between events); the manager's share of a cold start; its RSS idle and along a soak of many
requests. Every load loop is bounded by a request count and by wall-clock time.
"""


import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    CLIENT_CORE,
    COLD_LOAD_DELAY,
    HAVE_TASKSET,
    MANAGER_CORE,
    PY,
    backend_pid,
    chat_body,
    cpu_s,
    free_port,
    http_get,
    http_post,
    latency_run,
    merge_runs,
    pct,
    pin,
    stop_proc,
    stream_run,
    wait_http,
)
from systems import LITELLM_VENV, TWEAKS, LiteLLM, Manager, ensure_litellm

# ---------------------------------------------------------------- measurements


def backend_start_time(tmp: Path, runs: int) -> list[float]:
    """Seconds from spawning the fake backend (exactly as the manager does) to its first 200 on /health."""
    times = []
    for _ in range(runs):
        port = free_port()
        argv = pin(CLIENT_CORE, [PY, "-m", "llm_manager.testing.fake_backend", "--port", str(port), "--model",
                                 "bench-cold", "--fast", "--quiet"])
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            times.append(wait_http(port, "/health", 30, proc) - t0)
        finally:
            stop_proc(proc, 5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    return times


def cold_start(mgr: Manager, runs: int) -> tuple[list[float], list[dict[str, float]]]:
    """Seconds from a request for a stopped model to the first byte of its answer, and where they went.

    The breakdown uses the manager's own ``start`` and ``ready`` events (same clock): request -> start
    (placement), start -> ready (launch, backend start, load, health polling), ready -> first byte (proxying).
    """
    body = chat_body("bench-cold").encode()
    out, parts = [], []
    for _ in range(runs):
        t_req = time.time()
        status, data, ttfb = http_post(mgr.port, "/v1/chat/completions", body)
        if status != 200:
            raise RuntimeError(f"cold request: HTTP {status} {data[:300]!r}")
        out.append(ttfb)
        events = json.loads(http_get(mgr.port, "/api/events")[1])["events"]
        mine = [e for e in events if e.get("model") == "bench-cold" and e.get("ts", 0) >= t_req - 0.001]
        start = next((e["ts"] for e in mine if e["kind"] == "start"), None)
        ready = next((e["ts"] for e in mine if e["kind"] == "ready"), None)
        if start is not None and ready is not None:
            parts.append({"placement_ms": (start - t_req) * 1000, "launch_to_ready_ms": (ready - start) * 1000,
                          "ready_to_first_byte_ms": (t_req + ttfb - ready) * 1000})
        mgr.stop_model("bench-cold")
        time.sleep(0.3)
    return out, parts


def soak(mgr: Manager, total: int, steps: int, duration: float) -> list[tuple[int, float, float, int]]:
    """(requests so far, RSS MB, req/s of the step, errors) after each of ``steps`` equal batches."""
    per = max(1, total // steps)
    done, rows = 0, []
    deadline = time.monotonic() + duration
    while done < total and time.monotonic() < deadline:
        r = latency_run(mgr.url(), "bench-fast", 16, per, min(120.0, max(5.0, deadline - time.monotonic())))
        done += r.get("ok", 0) + r.get("errors", 0)
        rows.append((done, mgr.rss(), r.get("rps", 0.0), r.get("errors", 0)))
        if not r.get("ok"):
            break
    return rows


# ---------------------------------------------------------------- report


def fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def print_table(res: dict[str, Any], cols: list[str]) -> None:
    names = {"direct": "direct", "manager": "llm-manager", "litellm": "LiteLLM"}
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn: Any, nd: int = 2, added: bool = False) -> None:
        vals = [fn(res.get(c)) for c in cols]
        cells = [fmt(v, nd) for v in vals]
        if added and vals and vals[0] is not None:
            for i in range(1, len(vals)):
                if vals[i] is not None:
                    cells[i] += f" (+{vals[i] - vals[0]:.2f})"
        rows.append((label, cells))

    for c in (1, 16, 64):
        k = f"c{c}"
        add(f"non-stream c={c}: p50 ms", lambda r, k=k: pct(r and r.get(k), "latency_ms", "p50"), added=True)
        add(f"non-stream c={c}: p99 ms", lambda r, k=k: pct(r and r.get(k), "latency_ms", "p99"), added=True)
        add(f"non-stream c={c}: req/s", lambda r, k=k: (r or {}).get(k, {}).get("rps"), nd=0)
        add(f"non-stream c={c}: errors", lambda r, k=k: (r or {}).get(k, {}).get("errors"), nd=0)
        add(f"non-stream c={c}: CPU us/request", lambda r, k=k: (r or {}).get(k, {}).get("cpu_us_per_req"), nd=0)
    s = "stream"
    add("500 streams: max open at once", lambda r: (r or {}).get(s, {}).get("max_open_streams"))
    add("500 streams: TTFT p50 ms", lambda r: pct(r and r.get(s), "ttft_ms", "p50"), added=True)
    add("500 streams: TTFT p99 ms", lambda r: pct(r and r.get(s), "ttft_ms", "p99"), added=True)
    add("  rounds 2+ (pools warm): TTFT p50", lambda r: pct(r and r.get(s), "ttft_later_rounds_ms", "p50"), added=True)
    add("  rounds 2+ (pools warm): TTFT p99", lambda r: pct(r and r.get(s), "ttft_later_rounds_ms", "p99"), added=True)
    add("500 streams: gap p50 ms", lambda r: pct(r and r.get(s), "gap_ms", "p50"), added=True)
    add("500 streams: gap p99 ms", lambda r: pct(r and r.get(s), "gap_ms", "p99"), added=True)
    add("500 streams: events/s", lambda r: (r or {}).get(s, {}).get("events_per_s"), nd=0)
    add("500 streams: ok / errors", lambda r: (f"{r[s]['ok']} / {r[s]['errors']}" if r and s in r else None))
    add("RSS after the load, MB", lambda r: (r or {}).get("rss_mb"), nd=1)
    width = max(len(label) for label, _ in rows) + 2
    colw = [max(len(names[c]), *(len(cells[i]) for _, cells in rows)) + 2 for i, c in enumerate(cols)]
    print("\n" + "".ljust(width) + "".join(names[c].rjust(w) for c, w in zip(cols, colw, strict=True)))
    for label, cells in rows:
        print(label.ljust(width) + "".join(cell.rjust(w) for cell, w in zip(cells, colw, strict=True)))
    print("(added = minus the direct column, same run; c=1 and the streams: medians of the repeated runs)")


def verdicts(res: dict[str, Any]) -> list[str]:
    out = []
    d, m, lit = res.get("direct", {}), res.get("manager", {}), res.get("litellm")
    a50 = pct(m.get("c1"), "latency_ms", "p50") - pct(d.get("c1"), "latency_ms", "p50")
    a99 = pct(m.get("c1"), "latency_ms", "p99") - pct(d.get("c1"), "latency_ms", "p99")
    out.append(f"added latency c=1: p50 {a50:+.3f} ms (target <= 0.5)  {'PASS' if a50 <= 0.5 else 'MISS'}; "
               f"p99 {a99:+.3f} ms (target <= 2)  {'PASS' if a99 <= 2 else 'MISS'}")
    best = max(m.get(k, {}).get("rps", 0) for k in ("c1", "c16", "c64"))
    errs = sum(m.get(k, {}).get("errors", 0) for k in ("c1", "c16", "c64"))
    out.append(f"req/s through the manager on one core: {best:,.0f} (target >= 1,500, no errors; errors {errs})  "
               f"{'PASS' if best >= 1500 and errs == 0 else 'MISS'}")
    st_d, st_m = d.get("stream"), m.get("stream")
    if st_d and st_m and st_m.get("ttft_ms", {}).get("p50") is not None:
        at = st_m["ttft_ms"]["p50"] - st_d["ttft_ms"]["p50"]
        held = st_m.get("max_open_streams", 0)
        ok = at <= 1.0 and st_m["errors"] == 0 and held >= 500
        out.append(f"500 streams: {held} open at once, {st_m['errors']} errors, added TTFT p50 {at:+.3f} ms "
                   f"(target <= 1)  {'PASS' if ok else 'MISS'}")
    if lit and lit.get("c1", {}).get("latency_ms"):
        la = pct(lit.get("c1"), "latency_ms", "p50") - pct(d.get("c1"), "latency_ms", "p50")
        ratio = la / a50 if a50 > 0 else float("inf")
        out.append(f"vs LiteLLM: added p50 {la:.3f} ms vs {a50:.3f} ms = {ratio:.1f}x less (target >= 5x)  "
                   f"{'PASS' if ratio >= 5 else 'MISS'}")
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    p.add_argument("--with-litellm", action="store_true", help="add LiteLLM's proxy (installs it on first use)")
    p.add_argument("--soak", type=int, help="requests for the memory soak (default 100,000; --quick 10,000)")
    p.add_argument("--skip", default="", help="comma list of phases to skip: cold,soak,stream")
    p.add_argument("--tweak", action="append", default=[], choices=sorted(TWEAKS),
                   help="run the manager with a start-up change proposed for cli.py (repeatable): "
                        + "; ".join(f"{k}: {v}" for k, v in TWEAKS.items()))
    p.add_argument("--json", help="also write every figure to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    n1, n16, n64 = (1000, 4000, 4000) if args.quick else (5000, 20000, 20000)
    dur = 30.0 if args.quick else 60.0
    stream_rounds = 2 if args.quick else 3
    reps = 1 if args.quick else 3
    soak_total = args.soak if args.soak is not None else (10_000 if args.quick else 100_000)
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"machine: {cores} cores, Python {sys.version.split()[0]}, load average {load:.2f} at start; "
          f"manager (and LiteLLM) pinned to core {MANAGER_CORE}, load generator and backends to core {CLIENT_CORE}"
          if HAVE_TASKSET else f"machine: {cores} cores; no taskset or one core: nothing pinned", flush=True)
    if args.tweak:
        print("manager started with the proposed cli.py changes: " + "; ".join(TWEAKS[t] for t in args.tweak))
    res: dict[str, Any] = {"direct": {}, "manager": {}, "meta": {"quick": args.quick, "cores": cores,
                                                                 "python": sys.version.split()[0], "load": load,
                                                                 "tweaks": args.tweak}}
    tmp = Path(tempfile.mkdtemp(prefix="llm-manager-bench-"))
    mgr: Manager | None = None
    lit: LiteLLM | None = None
    try:
        if "cold" not in skip:
            starts = backend_start_time(tmp, 3 if args.quick else 5)
        mgr = Manager(tmp, tuple(args.tweak))
        res["manager"]["rss_idle_mb"] = mgr.rss()
        for name in ("bench-fast", "bench-stream"):
            mgr.start_model(name)
        fast, slow = mgr.ports["bench-fast"], mgr.ports["bench-stream"]
        direct_url = f"http://127.0.0.1:{fast}/v1/chat/completions"
        direct_stream = f"http://127.0.0.1:{slow}/v1/chat/completions"
        targets: list[tuple[str, str, str, str]] = [("direct", direct_url, direct_stream, "bench-fast"),
                                                    ("manager", mgr.url(), mgr.url(), "bench-fast")]
        if args.with_litellm:
            exe, why = ensure_litellm()
            if exe is None:
                print(f"LiteLLM column skipped: {why}", flush=True)
            else:
                try:
                    lit = LiteLLM(exe, tmp, {"bench-fast": fast, "bench-stream": slow})
                    res["litellm"] = {"version": subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                                                                 "import importlib.metadata as m;"
                                                                 "print(m.version('litellm'))"],
                                                                capture_output=True, text=True).stdout.strip()}
                    targets.append(("litellm", lit.url(), lit.url(), "bench-fast"))
                except RuntimeError as exc:
                    print(f"LiteLLM column skipped: it did not start: {exc}", flush=True)
                    lit = None
        res["manager"]["rss_ready_mb"] = mgr.rss()
        trace = res["manager"]["rss_trace"] = [("idle", 0, res["manager"]["rss_idle_mb"]),
                                                ("models ready", 0, res["manager"]["rss_ready_mb"])]
        served = 0
        print(f"manager RSS idle {res['manager']['rss_idle_mb']:.1f} MB; with two models ready "
              f"{res['manager']['rss_ready_mb']:.1f} MB", flush=True)

        watch = {"direct": [p for p in [backend_pid(mgr.proc.pid, fast)] if p], "manager": [mgr.proc.pid]}
        if lit is not None:
            watch["litellm"] = lit.pids()
        # c=1 and the streams are repeated (direct and manager alternating) and summarised by medians: the
        # figures that decide the latency targets should not hang on one unlucky second of a shared machine.
        # LiteLLM is a slow, far-off column: one run of each.
        for c, n in ((1, n1), (16, n16), (64, n64)):
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in targets}
            for rep in range(reps if c == 1 else 1):
                for name, url, _, model in targets:
                    if rep and name == "litellm":
                        continue
                    before = cpu_s(watch[name])
                    r = latency_run(url, model, c, n, dur)
                    used = cpu_s(watch[name]) - before
                    if r.get("ok"):
                        r["cpu_us_per_req"] = used / (r["ok"] + r["errors"] + 20 * c) * 1e6  # warm-up included
                    runs[name].append(r)
                    if name == "manager":
                        served += r.get("ok", 0) + r.get("errors", 0) + 20 * c
                    print(f"  c={c:<3} {name:<8} {r.get('rps', 0):8.0f} req/s  p50 "
                          f"{pct(r, 'latency_ms', 'p50') or 0:7.3f} p99 {pct(r, 'latency_ms', 'p99') or 0:7.3f} ms  "
                          f"errors {r.get('errors')}"
                          + (f"  e.g. {r['error_samples'][0]}" if r.get("error_samples") else ""), flush=True)
            for name, rs in runs.items():
                res[name][f"c{c}"] = merge_runs(rs)
            trace.append((f"after c={c}", served, mgr.rss()))
        if "stream" not in skip:
            sruns: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in targets}
            for rep in range(reps):
                for name, _, surl, _ in targets:
                    if rep and name == "litellm":
                        continue
                    r = stream_run(surl, "bench-stream", 500, stream_rounds, 40.0)
                    sruns[name].append(r)
                    if name == "manager":
                        served += r.get("ok", 0) + r.get("errors", 0)
                    print(f"  500 streams {name:<8} open {r.get('max_open_streams')}  TTFT p50 "
                          f"{pct(r, 'ttft_ms', 'p50') or 0:.3f} p99 {pct(r, 'ttft_ms', 'p99') or 0:.3f} ms  gap p50 "
                          f"{pct(r, 'gap_ms', 'p50') or 0:.2f} p99 {pct(r, 'gap_ms', 'p99') or 0:.2f} ms  "
                          f"ok {r.get('ok')} errors {r.get('errors')}"
                          + (f"  e.g. {r['error_samples'][0]}" if r.get("error_samples") else ""), flush=True)
            for name, rs in sruns.items():
                res[name]["stream"] = merge_runs(rs)
            trace.append(("after 500 streams", served, mgr.rss()))
        res["manager"]["rss_mb"] = mgr.rss()
        if lit is not None:
            res["litellm"]["rss_mb"] = lit.rss()
            lit.stop()
            lit = None

        if "cold" not in skip:
            colds, parts = cold_start(mgr, 3 if args.quick else 5)
            start_med, cold_med = statistics.median(starts), statistics.median(colds)
            share = cold_med - COLD_LOAD_DELAY - start_med
            res["cold"] = {"backend_start_s": starts, "cold_ttfb_s": colds, "load_delay_s": COLD_LOAD_DELAY,
                           "manager_share_ms": share * 1000, "breakdown": parts}
        if "soak" not in skip and soak_total > 0:
            rows = soak(mgr, soak_total, 10, 600.0 if not args.quick else 120.0)
            res["soak"] = [{"requests": n, "rss_mb": r, "rps": q, "errors": e} for n, r, q, e in rows]
            trace.extend((f"soak {n:,}", served + n, r) for n, r, _, _ in rows)
    finally:
        if lit is not None:
            lit.stop()
        if mgr is not None:
            mgr.stop()

    cols = ["direct", "manager"] + (["litellm"] if res.get("litellm", {}).get("c1") else [])
    print_table(res, cols)
    if "cold" in res:
        c = res["cold"]
        print(f"\ncold start: request -> first byte {statistics.median(c['cold_ttfb_s']) * 1000:.1f} ms (median of "
              f"{len(c['cold_ttfb_s'])}); backend's own start (spawn -> /health 200) "
              f"{statistics.median(c['backend_start_s']) * 1000:.1f} ms; load delay {COLD_LOAD_DELAY * 1000:.0f} ms; "
              f"manager's share {c['manager_share_ms']:.1f} ms (goal < 50)  "
              f"{'PASS' if c['manager_share_ms'] < 50 else 'MISS'}")
        if c["breakdown"]:
            med = {k: statistics.median(p[k] for p in c["breakdown"]) for k in c["breakdown"][0]}
            print(f"  medians: request -> launch {med['placement_ms']:.1f} ms; launch -> ready "
                  f"{med['launch_to_ready_ms']:.1f} ms (backend start + load delay = "
                  f"{(statistics.median(c['backend_start_s']) + COLD_LOAD_DELAY) * 1000:.1f} ms); "
                  f"ready -> first byte {med['ready_to_first_byte_ms']:.1f} ms")
    if "soak" in res:
        rows = res["soak"]
        print(f"\nmemory: manager RSS idle {res['manager']['rss_idle_mb']:.1f} MB, models ready "
              f"{res['manager']['rss_ready_mb']:.1f} MB, after the load phases {res['manager']['rss_mb']:.1f} MB")
        print("  along the run (requests served so far): " + ", ".join(
            f"{label} ({n:,}) {mb:.1f} MB" for label, n, mb in res["manager"]["rss_trace"]))
        if len(rows) >= 4:
            half = len(rows) // 2
            early = rows[half - 1]["rss_mb"] - rows[0]["rss_mb"]
            late = rows[-1]["rss_mb"] - rows[half - 1]["rss_mb"]
            levels = late <= max(2.0, 0.25 * max(early, 0.0))
            res["soak_levels_off"] = levels
            print(f"  soak of {rows[-1]['requests']:,} requests at c=16 "
                  f"({statistics.mean(r['rps'] for r in rows):,.0f} req/s): RSS growth over its first half "
                  f"{early:+.1f} MB, second half {late:+.1f} MB: "
                  f"{'levels off' if levels else 'still growing'}; "
                  f"errors {sum(r['errors'] for r in rows)}")
            if not levels and rows[-1]["requests"] < 50_000:
                print("  (the live usage window keeps the last 20,000 requests in memory, so RSS is expected to grow "
                      "until then; run without --quick for the 100,000-request soak)")
    print()
    for line in verdicts(res):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
