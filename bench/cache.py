"""Response cache benchmark: a cache hit vs the proxy's own added latency, side by side in one run.

    python bench/cache.py [--count 2000] [--duration 15] [--json bench/output/cache.json]

One fake backend (``--fast --quiet``, launched by the manager, pinned to the client core) behind one manager
(pinned to its own core), measured at concurrency 1 by ``bench/loadgen.py``:
  * direct: the backend alone (what the model server costs);
  * proxied: through the manager, a sampled request (temperature 0.7: never cached);
  * cache hit: through the manager, the same request at temperature 0 (stored by the warm-up, then replayed).
The proxy's overhead is proxied minus direct; a hit should cost no more than that overhead (no upstream at all).
"""

from __future__ import annotations

import argparse
import json
import os
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
    chat_body,
    free_port,
    http_post,
    loadgen,
    pin,
    stop_proc,
    wait_http,
)

MODEL = "bench-cached"


def start_manager(tmp: Path) -> tuple[Any, int, int]:
    """The manager with one cached Chat model, started and ready; returns (process, manager port, backend port)."""
    import subprocess

    port, backend = free_port(), free_port()
    command = pin(CLIENT_CORE, [PY, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}", "--model",
                                "${MODEL}", "--fast", "--quiet"])
    doc = {"program": {"host": "127.0.0.1", "port": port, "alive_time": 0, "access_log": False},
           MODEL: {"mode": "Chat", "port": backend, "cache": True, "command": command,
                   "gpu": {"required_devices": [], "memory_mb": {}}}}
    (tmp / "config.json").write_text(json.dumps(doc))
    argv = pin(MANAGER_CORE, [PY, "-m", "llm_manager.cli", "serve", "--config", str(tmp / "config.json"),
                              "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                              "--data-dir", str(tmp / "data")])
    log = (tmp / "manager.log").open("w")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_http(port, "/api/health", 60, proc, poll=0.05)
    status, body, _ = http_post(port, f"/api/models/{MODEL}/start?wait=1")
    if status != 200:
        raise RuntimeError(f"starting {MODEL}: HTTP {status} {body[:300]!r}")
    return proc, port, backend


def body(temperature: float) -> str:
    return json.dumps({**json.loads(chat_body(MODEL)), "temperature": temperature})


def run(url: str, data: str, count: int, duration: float) -> dict[str, Any]:
    return loadgen("latency", "--url", url, "--body", data, "--concurrency", "1", "--count", str(count),
                   "--duration", str(duration), "--warmup", "20", timeout=duration + 60)


def cache_header(port: int) -> str:
    """The X-LLM-Manager-Cache answer header of one temperature-0 request (a raw socket: no library)."""
    import socket

    data = body(0).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            if not chunk:
                break
            head += chunk
    for line in head.split(b"\r\n\r\n")[0].decode().split("\r\n"):
        if line.lower().startswith("x-llm-manager-cache:"):
            return line.split(":", 1)[1].strip()
    return "(none)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="requests per measurement")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per measurement, at most")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, backend = start_manager(Path(tmp))
        try:
            http_post(port, "/v1/chat/completions", body(0).encode())  # stored now: every later one is a hit
            header = cache_header(port)
            results = {
                "direct (backend alone)": run(f"http://127.0.0.1:{backend}/v1/chat/completions", body(0.7),
                                              args.count, args.duration),
                "proxied (temperature 0.7)": run(f"http://127.0.0.1:{port}/v1/chat/completions", body(0.7),
                                                 args.count, args.duration),
                "cache hit (temperature 0)": run(f"http://127.0.0.1:{port}/v1/chat/completions", body(0),
                                                 args.count, args.duration),
            }
            load = os.getloadavg()
        finally:
            stop_proc(proc, 20)
    print(f"cache benchmark, concurrency 1; hit request's header: X-LLM-Manager-Cache: {header}")
    print(f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    print(f"{'':28} {'ok':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        lat = r.get("latency_ms") or {}
        print(f"{name:28} {r.get('ok', 0):>6} {r.get('errors', 0):>4} {r.get('rps') or 0:>8.0f} "
              f"{lat.get('p50') or 0:>8.3f} {lat.get('p90') or 0:>8.3f} {lat.get('p99') or 0:>8.3f}")
    p50 = {name: (r.get("latency_ms") or {}).get("p50") or 0.0 for name, r in results.items()}
    direct, proxied, hit = p50.values()
    print(f"proxy overhead (p50 proxied - direct): {proxied - direct:.3f} ms; cache hit p50: {hit:.3f} ms "
          f"({'within' if hit <= proxied - direct else 'above'} the overhead)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ts": time.time(), "load": load, "header": header, "results": results},
                                        indent=2))
    for r in results.values():
        if r.get("errors"):
            print("errors:", r.get("error_samples"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
