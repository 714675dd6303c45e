"""A/B: the manager's hot path in two or more variants, measured alternately in one run.

    python bench/ab.py --variant head --variant ref:HEAD~1 --variant tweak:httpcore [--rounds 3]

A variant is ``head`` (this checkout), ``ref:REV`` (that commit, checked out in a temporary git worktree)
or ``tweak:NAME`` (this checkout started with one of ``proxy.py``'s start-up tweaks). Each round starts a
fresh manager per variant, in turn, and measures it at concurrency 1 and 16 (non-streaming) and with 500
streams; the table gives medians over the rounds and each variant's ratio to the first. The manager's CPU
time per request is the steadiest figure on a shared machine. Same pinning and load generator as
``proxy.py``: manager on core 0 alone, load generator and backends on core 1, loopback only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, cpu_s, latency_run, pct, stream_run  # noqa: E402
from systems import TWEAKS, Manager  # noqa: E402


def checkout(ref: str, into: Path) -> Path:
    """A detached git worktree of ``ref`` (removed again by ``drop``)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(into), ref],
                   check=True, capture_output=True)
    return into


def drop(tree: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def measure(mgr: Manager, n1: int, n16: int, streams: bool) -> dict[str, float]:
    """One round against one started manager: c=1, c=16 and (optionally) 500 streams."""
    out: dict[str, float] = {}
    url = mgr.url()
    for c, n in ((1, n1), (16, n16)):
        before = cpu_s([mgr.proc.pid])
        r = latency_run(url, "bench-fast", c, n, 60.0)
        used = cpu_s([mgr.proc.pid]) - before
        if r.get("errors"):
            raise RuntimeError(f"c={c}: {r['errors']} errors, e.g. {r.get('error_samples')}")
        out[f"c{c} p50 ms"] = pct(r, "latency_ms", "p50") or 0.0
        out[f"c{c} p99 ms"] = pct(r, "latency_ms", "p99") or 0.0
        out[f"c{c} req/s"] = r["rps"]
        out[f"c{c} CPU us/req"] = used / (r["ok"] + 20 * c) * 1e6
    if streams:
        r = stream_run(url, "bench-stream", 500, 2, 40.0)
        if r.get("errors"):
            raise RuntimeError(f"streams: {r['errors']} errors, e.g. {r.get('error_samples')}")
        out["500 streams TTFT p50 ms"] = pct(r, "ttft_ms", "p50") or 0.0
        out["500 streams TTFT p99 ms"] = pct(r, "ttft_ms", "p99") or 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", default=[], help="head | ref:REV | tweak:NAME (repeat, 2 or more)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=3000, help="requests per concurrency per round")
    p.add_argument("--no-streams", action="store_true", help="leave the 500-stream phase out")
    args = p.parse_args(argv)
    variants = args.variant or ["head", "tweak:httpcore"]
    if len(variants) < 2:
        p.error("give two variants or more")
    tmp = Path(tempfile.mkdtemp(prefix="llm-manager-ab-"))
    roots: dict[str, tuple[Path, tuple[str, ...]]] = {}
    try:
        for v in variants:
            kind, _, arg = v.partition(":")
            if kind == "head":
                roots[v] = (ROOT, ())
            elif kind == "ref" and arg:
                roots[v] = (checkout(arg, tmp / f"tree-{len(roots)}"), ())
            elif kind == "tweak" and arg in TWEAKS:
                roots[v] = (ROOT, (arg,))
            else:
                p.error(f"unknown variant {v!r}: head, ref:REV or tweak:{'|'.join(TWEAKS)}")
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for rnd in range(args.rounds):
            for v in variants:
                root, tweaks = roots[v]
                run_dir = tmp / f"run-{rnd}-{variants.index(v)}"
                run_dir.mkdir(parents=True)
                mgr = Manager(run_dir, tweaks, root=root)
                try:
                    for name in ("bench-fast", "bench-stream"):
                        mgr.start_model(name)
                    r = measure(mgr, args.requests // 3, args.requests, not args.no_streams)
                finally:
                    mgr.stop()
                results[v].append(r)
                print(f"round {rnd + 1} {v:<16} " + "  ".join(f"{k} {x:,.2f}" for k, x in r.items()), flush=True)
    finally:
        for root, _ in roots.values():
            if root != ROOT:
                drop(root)
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(variants, results)
    return 0


def print_table(variants: list[str], results: dict[str, list[dict[str, float]]]) -> None:
    keys = list(results[variants[0]][0])
    med: dict[str, dict[str, Any]] = {v: {k: statistics.median(r[k] for r in results[v]) for k in keys}
                                      for v in variants}
    width = max(18, *(len(v) + 2 for v in variants))
    print(f"\nmedians of {len(results[variants[0]])} rounds; (x) = ratio to {variants[0]}")
    print(f"{'':<26}" + "".join(f"{v:>{width + 9}}" for v in variants))
    for k in keys:
        base = med[variants[0]][k]
        cells = [f"{med[v][k]:>{width},.2f}" + (f" ({med[v][k] / base:4.2f})" if base else " " * 7)
                 for v in variants]
        print(f"{k:<26}" + "".join(f"{c:>{width + 9}}" for c in cells))


if __name__ == "__main__":
    sys.exit(main())
