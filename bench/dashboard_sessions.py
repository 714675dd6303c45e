"""The proxy's added latency at concurrency 1 with five dashboard sessions open in headless Chromium vs none.

    python bench/dashboard_sessions.py [--sessions 5] [--count 3000] [--rounds 3]

One ``llm-manager serve`` (its in-process /dashboard on, a fake backend that answers at once) pinned to core 0,
the load generator and the backend on core 1. Chromium loads its pages unpinned (pinned beside the load generator,
its pages stalled), then is moved to core 1 (``--chromium-core``, "any" to leave it free): the question is what open
sessions cost the proxy, and on a 2-core machine an unpinned browser's renderer otherwise takes turns on the
manager's core. Chromium's own CPU while measured is printed. Rounds alternate "no dashboard" and "N sessions open"
(each session a page of /dashboard, on its default tab, with its timers running: the 1 s model poll, the device and
throughput ticks, the 30 s analysis refresh). Each phase measures the backend directly and through the manager at
c=1; added = manager - direct of the same phase. Prints medians over the rounds side by side, the ratio, the load
average, and PASS when the added p50 with sessions is at most 10 % above the one without. Every load run is
bounded by a request count and a wall-clock limit, and the whole run by ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    CLIENT_CORE,
    HAVE_TASKSET,
    MANAGER_CORE,
    PY,
    ROOT,
    cpu_s,
    free_port,
    latency_run,
    pct,
    pin,
    stop_proc,
    wait_http,
)

GOAL = 1.10
MODEL = "bench-fast"


def start_manager(tmp: Path) -> tuple[Any, int, int]:
    """``llm-manager serve`` with the dashboard, one fast fake backend started and ready; (proc, port, backend)."""
    import subprocess

    port, backend = free_port(), free_port()
    command = pin(CLIENT_CORE, [PY, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}", "--model",
                                "${MODEL}", "--fast", "--quiet"])
    doc = {"program": {"host": "127.0.0.1", "port": port, "alive_time": 0, "monitor_interval": 0.5},
           MODEL: {"aliases": [], "mode": "Chat", "port": backend, "auto_start": True, "command": command,
                   "gpu": {"required_devices": [], "memory_mb": {}},
                   "pricing": {"input": 0.5, "output": 1.5}}}
    (tmp / "config.json").write_text(json.dumps(doc))
    log = (tmp / "manager.log").open("w")
    proc = subprocess.Popen(pin(MANAGER_CORE, [PY, "-m", "llm_manager.cli", "serve", "--config",
                                               str(tmp / "config.json"), "--host", "127.0.0.1", "--port", str(port),
                                               "--data-dir", str(tmp / "data")]),
                            cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_http(port, "/api/health", 60, proc, poll=0.05)
    wait_http(backend, "/health", 60, proc, poll=0.05)
    return proc, port, backend


def open_sessions(port: int, n: int) -> tuple[Any, Any, list[Any]]:
    """Headless Chromium with ``n`` pages of /dashboard, each rendered. Chromium is not pinned: pinned to one core
    beside the load generator, its pages stalled ("waiting for fonts") and never finished loading."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=os.environ.get("LLM_MANAGER_CHROMIUM", "/usr/bin/chromium"),
                                 args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    pages = []
    for _ in range(n):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/dashboard", wait_until="domcontentloaded", timeout=60_000)
        try:
            page.locator(".kpi").first.wait_for(timeout=90_000)  # the analysis drawn: the session is live
        except Exception:
            page.screenshot(path=str(ROOT / "bench" / "output" / "dashboard-session-failed.png"))
            raise
        pages.append(page)
    return pw, browser, pages


def chromium_pids() -> list[int]:
    """Every Chromium process started by this one (through Playwright's driver)."""
    import psutil

    return [c.pid for c in psutil.Process().children(recursive=True) if "chrom" in (c.name() or "").lower()]


def pin_chromium(core: str) -> list[int]:
    """Move the running Chromium processes (every thread) to ``core``; returns their pids."""
    import subprocess

    pids = chromium_pids()
    if core != "any" and HAVE_TASKSET:
        for pid in pids:
            subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], capture_output=True, check=False)
    return pids


def settle(pid: int, limit: float = 60.0) -> float:
    """Wait until the sessions' first loads are done: the manager below a quarter of a core over 2 s (bounded);
    returns the last 2 s share. What is measured is sessions left open, not five pages loading."""
    deadline = time.monotonic() + limit
    share = 1.0
    while time.monotonic() < deadline:
        before, t = cpu_s([pid]), time.monotonic()
        time.sleep(2.0)
        share = (cpu_s([pid]) - before) / (time.monotonic() - t)
        if share < 0.25:
            break
    return share


def phase(port: int, backend: int, pid: int, count: int) -> dict[str, float]:
    """c=1 through the manager and directly, back to back; added = manager - direct."""
    direct = latency_run(f"http://127.0.0.1:{backend}/v1/chat/completions", MODEL, 1, count, 60.0)
    before = cpu_s([pid])
    managed = latency_run(f"http://127.0.0.1:{port}/v1/chat/completions", MODEL, 1, count, 60.0)
    used = cpu_s([pid]) - before
    for name, r in (("direct", direct), ("manager", managed)):
        if r.get("errors") or not r.get("ok"):
            raise RuntimeError(f"{name}: {r.get('errors')} errors, e.g. {r.get('error_samples')}")
    out = {}
    for p in ("p50", "p99"):
        d, m = pct(direct, "latency_ms", p) or 0.0, pct(managed, "latency_ms", p) or 0.0
        out[f"direct {p} ms"], out[f"manager {p} ms"], out[f"added {p} ms"] = d, m, m - d
    out["manager CPU us/req"] = used / managed["ok"] * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--count", type=int, default=3000, help="requests per c=1 run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=900.0, help="stop starting rounds after this many seconds")
    ap.add_argument("--chromium-core", default=CLIENT_CORE, help="core for Chromium once its pages are loaded, "
                    "or 'any'")
    args = ap.parse_args()
    load_before = os.getloadavg()
    t0 = time.monotonic()
    results: dict[str, list[dict[str, float]]] = {"none": [], "open": []}
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        proc, port, backend = start_manager(Path(tmp))
        pw = browser = None
        try:
            for i in range(args.rounds):
                if time.monotonic() - t0 > args.budget:
                    print(f"budget of {args.budget:g} s reached after {i} rounds")
                    break
                idle = settle(proc.pid)
                results["none"].append(phase(port, backend, proc.pid, args.count))
                results["none"][-1]["manager CPU when idle %"] = 100 * idle
                results["none"][-1]["Chromium CPU while measured %"] = 0.0
                pw, browser, pages = open_sessions(port, args.sessions)
                chromium = pin_chromium(args.chromium_core)
                idle = settle(proc.pid)
                used, t = cpu_s(chromium), time.monotonic()
                results["open"].append(phase(port, backend, proc.pid, args.count))
                results["open"][-1]["manager CPU when idle %"] = 100 * idle
                results["open"][-1]["Chromium CPU while measured %"] = 100 * (cpu_s(chromium) - used) / (
                    time.monotonic() - t)
                for page in pages:
                    page.close()
                browser.close()
                pw.stop()
                pw = browser = None
                print(f"round {i + 1}: added p50 {results['none'][-1]['added p50 ms']:.3f} ms without, "
                      f"{results['open'][-1]['added p50 ms']:.3f} ms with {args.sessions} sessions", flush=True)
        finally:
            if browser is not None:
                browser.close()
            if pw is not None:
                pw.stop()
            stop_proc(proc, 20)
    if not results["open"]:
        return 1
    load_after = os.getloadavg()
    rows = list(results["none"][0])
    med = {k: {r: statistics.median(x[r] for x in v) for r in rows} for k, v in results.items() if v}
    head = f"{'c=1, median of ' + str(len(results['open'])) + ' rounds':<28}{'no dashboard':>14}" \
           f"{f'{args.sessions} sessions':>14}{'ratio':>8}"
    print(f"\n{head}\n" + "-" * len(head))
    for r in rows:
        a, b = med["none"][r], med["open"][r]
        print(f"{r:<28}{a:>14.3f}{b:>14.3f}{(b / a if a else float('nan')):>8.2f}")
    ratio = med["open"]["added p50 ms"] / med["none"]["added p50 ms"]
    print("-" * len(head))
    print(f"added p50 with {args.sessions} sessions / without: {ratio:.2f} (goal <= {GOAL:.2f}): "
          f"{'PASS' if ratio <= GOAL else 'MISS'}")
    print(f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs; "
          f"{'pinned' if HAVE_TASKSET else 'not pinned (no taskset)'}, Chromium on core {args.chromium_core} once "
          f"loaded; {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
