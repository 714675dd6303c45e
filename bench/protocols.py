"""What translating a protocol costs: TTFT of a translated Anthropic /v1/messages stream vs the same request on
/v1/chat/completions, side by side in one run.

    python bench/protocols.py [--streams 100] [--rounds 2] [--repeats 2] [--json bench/output/protocols.json]

The manager (``bench/systems.Manager``, pinned to core 0) serves ``bench-stream``, a fake backend pacing 20 tokens
at 10 tokens/s; that backend speaks only OpenAI's protocol, so /v1/messages is translated both ways (request to
chat completions, every SSE event back to Anthropic's). The load generator (core 1) opens N concurrent streams
per run, alternating the two endpoints run by run (A B A B) so drift in the machine's load hits both alike.
TTFT is the first SSE event (OpenAI's role chunk; Anthropic's message_start, sent when that chunk arrives);
the manager's CPU time per stream shows what the translation of every event costs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import STREAM_TOKENS, cpu_s, loadgen, merge_runs, pct
from systems import Manager

MODEL = "bench-stream"
PROMPT = [{"role": "user", "content": "Say hello to the benchmark."}]
ENDPOINTS = {"chat": "/v1/chat/completions", "messages": "/v1/messages"}


def body() -> str:
    return json.dumps({"model": MODEL, "messages": PROMPT, "max_tokens": STREAM_TOKENS, "stream": True})


def load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run(mgr: Manager, kind: str, streams: int, rounds: int) -> dict[str, Any]:
    return loadgen("stream", "--url", mgr.url(ENDPOINTS[kind]), "--body", body(), "--streams", str(streams),
                   "--rounds", str(rounds), "--ramp", "1", "--duration", "60", timeout=120)


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=100, help="concurrent streams per run")
    p.add_argument("--rounds", type=int, default=2, help="streams per connection, back to back")
    p.add_argument("--repeats", type=int, default=2, help="runs per endpoint (alternated)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="llm-manager-bench-protocols-"))
    loads = [load()]
    mgr = Manager(tmp)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ENDPOINTS}
    try:
        mgr.start_model(MODEL)
        for kind in ENDPOINTS:  # one unmeasured warm-up run each
            run(mgr, kind, 10, 1)
        for _ in range(args.repeats):
            for kind in ENDPOINTS:
                before = cpu_s([mgr.proc.pid])
                result = run(mgr, kind, args.streams, args.rounds)
                result["manager_cpu_ms_per_stream"] = (cpu_s([mgr.proc.pid]) - before) * 1000 / max(1, result["ok"])
                runs[kind].append(result)
                loads.append(load())
    finally:
        mgr.stop()
    res = {k: merge_runs(v) for k, v in runs.items()}
    print(f"{args.streams} concurrent streams x {args.rounds} rounds x {args.repeats} runs per endpoint, "
          f"{STREAM_TOKENS} tokens at 10 tokens/s each; load average (1 min) "
          + " -> ".join(f"{x:.2f}" for x in loads))
    print(f"{'TTFT ms':<14}{'chat/completions':>18}{'messages (translated)':>24}{'ratio':>8}")
    for q in ("p50", "p90", "p99"):
        a, b = pct(res["chat"], "ttft_ms", q), pct(res["messages"], "ttft_ms", q)
        ratio = b / a if a and b else None
        print(f"{q:<14}{fmt(a):>18}{fmt(b):>24}{fmt(ratio):>8}")
    for label, key in (("gap p50 ms", "gap_ms"), ("total p50 ms", "total_ms")):
        a, b = pct(res["chat"], key, "p50"), pct(res["messages"], key, "p50")
        print(f"{label:<14}{fmt(a):>18}{fmt(b):>24}{fmt(b / a if a and b else None):>8}")
    a, b = res["chat"]["manager_cpu_ms_per_stream"], res["messages"]["manager_cpu_ms_per_stream"]
    print(f"{'mgr CPU ms/str':<14}{fmt(a):>18}{fmt(b):>24}{fmt(b / a if a and b else None):>8}")
    print(f"{'ok / errors':<14}{res['chat']['ok']:>12} / {res['chat']['errors']:<3}"
          f"{res['messages']['ok']:>18} / {res['messages']['errors']:<3}")
    for kind in ENDPOINTS:
        for sample in res[kind].get("error_samples") or ():
            print(f"  {kind} error: {sample}", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"results": res, "load": loads, "args": vars(args)}, indent=2))
    return 0 if res["chat"]["errors"] == 0 and res["messages"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
