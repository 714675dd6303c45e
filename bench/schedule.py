"""Swap-aware scheduling vs FIFO (issue 19): one seeded interleaved trace, replayed under both schedulers.

Three models compete for one simulated GPU on which two fit; each loads in ``--load`` seconds (the fake
backend's ``--load-delay``; 4 by default) and generates at ``TPS`` tokens/s. The same trace (arrival times,
models, answer lengths; seeded) is replayed against a manager with ``scheduler: "fifo"`` and one with ``"swap-aware"``. A client that is refused
(429/503) retries after the answer's ``Retry-After``, as a well-behaved client would. Printed side by side: swaps
(evictions), total time (first arrival to last answer; for an open loop also the least any scheduler could reach:
the last arrival plus its generation), and each request's wait (arrival to answer, less its own
generation time) at p50/p95/max, with the load average.

Traffic shapes (``--shapes``, all in one run by default): open loop at 1 arrival/s (models go idle between bursts:
FIFO evicts them at once and thrashes), open loop at 5/s (models are busy: FIFO refuses instead, its clients retry),
and closed loop with 8 clients taking the trace's requests in order (a batch or an agent framework's workers).

    python bench/schedule.py [--requests 60] [--seed 7] [--shapes open:1,open:5,closed:8] [--load 4]
                             [--min-residency 10] [--rounds 1] [--lengths 8,16,32,64]

BENCH_EVENTS=1 also prints each run's events.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_proc, wait_http  # noqa: E402

LOAD_S, TPS = 4.0, 40.0  # a small model's load (real ones take 5 to 60 s: swaps cost more still)
MODELS = ("a", "b", "c")
MIN_RESIDENCY, MAX_WAIT = 10.0, 60.0  # the defaults


def trace(n: int, seed: int, rate: float, lengths: tuple[int, ...]) -> list[tuple[float, str, int]]:
    """(arrival second, model, max_tokens): rounds in which every model gets a small burst (1 to 3 requests) in a
    random order, so the three models interleave throughout; answer lengths are mixed."""
    rng = random.Random(seed)
    t, out = 0.0, []
    while len(out) < n:
        for model in rng.sample(list(MODELS), len(MODELS)):
            for _ in range(rng.randint(1, 3)):
                out.append((round(t, 3), model, rng.choice(lengths)))
                t += rng.expovariate(rate)
    return out[:n]


def config(scheduler: str, tmp: Path, load_s: float, residency: float) -> Path:
    models = {}
    for name in MODELS:
        models[name] = {
            "mode": "Chat", "port": free_port(), "max_concurrency": 4, "max_queue": 1000,
            "command": [sys.executable, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}", "--quiet",
                        "--load-delay", str(load_s), "--tokens-per-second", str(TPS)],
            "gpu": {"required_devices": ["gpu"], "memory_mb": {"gpu": 7000}},
        }
    doc = {"program": {"host": "127.0.0.1", "port": 0, "log_level": "WARNING", "access_log": False,
                       "simulated_devices": [{"name": "gpu", "total_memory_mb": 16000}], "scheduler": scheduler,
                       "min_residency": residency, "max_wait": MAX_WAIT}, **models}
    path = tmp / f"{scheduler}.json"
    path.write_text(json.dumps(doc))
    return path


def replay(scheduler: str, requests: list[tuple[float, str, int]], clients: int, load_s: float,
           residency: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-schedule-{scheduler}-"))
    port = free_port()
    doc = config(scheduler, tmp, load_s, residency)
    proc = subprocess.Popen([sys.executable, "-m", "llm_manager.cli", "serve", "--config", str(doc),
                             "--port", str(port), "--host", "127.0.0.1", "--data-dir", str(tmp / "data"),
                             "--no-dashboard"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(port, "/api/health", 90, proc)
        url = f"http://127.0.0.1:{port}"
        waits: list[float] = []
        retries = [0]
        lock = threading.Lock()
        began, began_wall = time.monotonic(), time.time()

        def one(at: float | None, model: str, tokens: int) -> None:
            if at is not None:
                time.sleep(max(0.0, began + at - time.monotonic()))
            arrived = time.monotonic()
            body = {"model": model, "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}]}
            with httpx.Client(timeout=300, trust_env=False) as client:
                for _ in range(200):
                    r = client.post(url + "/v1/chat/completions", json=body)
                    if r.status_code == 200:
                        break
                    with lock:
                        retries[0] += 1
                    time.sleep(min(5.0, float(r.headers.get("Retry-After", "1"))))
            with lock:
                waits.append(time.monotonic() - arrived - tokens / TPS)

        if clients:  # closed loop: each worker takes the trace's next request when its last one is answered
            queue = list(reversed(requests))

            def worker() -> None:
                while True:
                    with lock:
                        if not queue:
                            return
                        _, model, tokens = queue.pop()
                    one(None, model, tokens)

            threads = [threading.Thread(target=worker) for _ in range(clients)]
        else:  # open loop: each request at its arrival time
            threads = [threading.Thread(target=one, args=r) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.monotonic() - began
        swaps = starts = 0  # from the models' logs: the event list the API shows is bounded
        for name in MODELS:
            lines = httpx.get(f"{url}/api/logs/{name}", params={"lines": 100000}, trust_env=False).json()["lines"]
            manager = [x["line"] for x in lines if x["stream"] == "manager"]
            swaps += sum(1 for x in manager if x.startswith("state stopping: evicted"))
            starts += sum(1 for x in manager if x.startswith("launch:"))
        waits.sort()
        events = httpx.get(url + "/api/events", trust_env=False).json()["events"]
        if os.environ.get("BENCH_EVENTS"):
            for e in events:
                print(f"{scheduler:10} {e['ts'] - began_wall:7.2f} {e['kind']:10} {e['model']:3} {e['detail'][:110]}")
        return {"swaps": swaps, "starts": starts, "total_s": total, "retries": retries[0],
                "p50": statistics.median(waits), "p95": waits[int(0.95 * (len(waits) - 1))], "max": waits[-1]}
    finally:
        stop_proc(proc)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (one machine's noise moves a single run's makespan by a fifth)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def compare(shape: str, fifo: dict[str, Any], aware: dict[str, Any], bound: float | None) -> str:
    """One shape's table, side by side, and its line against the goal. ``bound``: the least total time any
    scheduler could reach (open loop: the last arrival plus its own generation), so the best ratio there is."""
    rows = [("swaps (evictions)", "swaps", "{:.0f}"), ("starts", "starts", "{:.0f}"),
            ("refusals retried", "retries", "{:.0f}"), ("total time s", "total_s", "{:.1f}"),
            ("wait p50 s", "p50", "{:.2f}"), ("wait p95 s", "p95", "{:.2f}"), ("wait max s", "max", "{:.2f}")]
    out = [f"\n{shape}\n", f"| {'':20} | {'fifo':>10} | {'swap-aware':>10} | {'fifo / swap-aware':>17} |",
           f"|{'-' * 22}|{'-' * 12}|{'-' * 12}|{'-' * 19}|"]
    for label, key, fmt in rows:
        ratio = fifo[key] / aware[key] if aware[key] else float("inf")
        out.append(f"| {label:20} | {fmt.format(fifo[key]):>10} | {fmt.format(aware[key]):>10} | {ratio:>16.2f}x |")
    if bound is not None:
        out.append(f"| {'least possible s':20} | {bound:>10.1f} | {bound:>10.1f} | "
                   f"{'best ' + format(fifo['total_s'] / bound, '.2f') + 'x':>17} |")
    swaps = fifo["swaps"] / max(1, aware["swaps"])
    faster = fifo["total_s"] / aware["total_s"]
    met = swaps >= 2 and faster >= 1.5 and aware["max"] < MAX_WAIT
    out.append(f"goal: swaps >= 2x fewer ({swaps:.2f}x), total time >= 1.5x less ({faster:.2f}x), swap-aware max "
               f"wait < max_wait {MAX_WAIT:g} s ({aware['max']:.1f} s): {'met' if met else 'NOT met'}")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--load", type=float, default=LOAD_S, help="each model's load time, seconds")
    p.add_argument("--min-residency", type=float, default=MIN_RESIDENCY, help="seconds (10: the default)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each shape and scheduler; medians are printed")
    p.add_argument("--shapes", default="open:1,open:5,closed:8",
                   help="traffic shapes, comma-separated: open:RATE (arrivals per second) or closed:CLIENTS")
    p.add_argument("--lengths", default="8,16,32,64", help="answer lengths (max_tokens) the trace picks from")
    args = p.parse_args()
    lengths = tuple(int(x) for x in args.lengths.split(","))
    load = os.getloadavg()
    tables = []
    for shape in args.shapes.split(","):
        kind, _, value = shape.partition(":")
        closed = kind == "closed"
        requests = trace(args.requests, args.seed, 5.0 if closed else float(value), lengths)
        clients = int(value) if closed else 0
        label = (f"closed loop: {clients} clients take the trace's requests in order" if closed else
                 f"open loop: {float(value):g} arrivals/s, each request at its time")
        runs: dict[str, list[dict[str, Any]]] = {"fifo": [], "swap-aware": []}
        for _ in range(args.rounds):  # alternated, so a slow spell of the machine falls on both
            for scheduler, results in runs.items():
                results.append(replay(scheduler, requests, clients, args.load, args.min_residency))
        bound = None if closed else max(at + tokens / TPS for at, _, tokens in requests)
        tables.append(compare(label, median_of(runs["fifo"]), median_of(runs["swap-aware"]), bound))
    print(f"\n{args.requests} requests, seed {args.seed}, {args.rounds} round(s), medians; 3 models of which 2 fit, "
          f"load {args.load:g} s, {TPS:g} tok/s, answers of {args.lengths} tokens, min_residency "
          f"{args.min_residency:g} s, max_wait {MAX_WAIT:g} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(before), {os.getloadavg()[0]:.2f} (after)")
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
