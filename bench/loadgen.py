"""A tight HTTP/1.1 keep-alive load generator (raw asyncio protocol, no HTTP library).

Run by ``bench/proxy.py`` in its own process (pinned to its own core) so the generator is never
what is measured; every run is bounded by a request count *and* a wall-clock deadline.

    python bench/loadgen.py latency --url http://127.0.0.1:8080/v1/chat/completions --body '{...}' \
        --concurrency 16 --count 5000 --duration 20
    python bench/loadgen.py stream --url ... --body '{..., "stream": true}' --streams 500 --rounds 2 \
        --ramp 2 --duration 30

Prints one JSON object: ok/errors, elapsed, req/s and latency percentiles (ms); in stream mode also
time to first SSE event, the gaps between events, and the most streams seen open at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from urllib.parse import urlsplit

try:  # the generator's own speed matters, not its loop's provenance
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

now = time.perf_counter


def percentiles(values: list[float], ps: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float | None]:
    if not values:
        return {f"p{p:g}": None for p in ps} | {"max": None, "mean": None}
    s = sorted(values)
    out: dict[str, float | None] = {}
    for p in ps:
        k = min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))
        out[f"p{p:g}"] = s[k]
    out["max"] = s[-1]
    out["mean"] = sum(s) / len(s)
    return out


class Conn(asyncio.Protocol):
    """One keep-alive connection; ``request()`` sends the pre-built request and awaits the full answer."""

    def __init__(self, record_events: bool = False):
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.record_events = record_events
        self.lost = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.in_body = False
        self.remaining = -1  # content-length left; -1 = chunked
        self.chunk_left = -1  # bytes of the current chunk still to come (+2 for its CRLF); -1 = expect a size line
        self.events: list[float] = []  # arrival time of each SSE event (stream mode)
        self.body_head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def request(self, data: bytes) -> asyncio.Future:
        self._reset()
        self.buf.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        t = now()
        buf = self.buf
        buf += data
        if not self.in_body:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            del buf[: end + 4]
            self.in_body = True
            i = head.find(b"content-length:")
            if i >= 0:
                j = head.find(b"\r\n", i)
                self.remaining = int(head[i + 15 : j if j >= 0 else None])
            elif b"chunked" in head:
                self.remaining = -1
            else:
                self.remaining = -2  # read to close (not expected)
        if self.remaining >= 0:
            if self.record_events and buf:
                n = buf.count(b"data:")
                self.events.extend([t] * n)
            if len(buf) >= self.remaining:
                if not self.body_head:
                    self.body_head = bytes(buf[:300])
                self._done()
            return
        if self.remaining == -2:
            return
        # chunked transfer coding
        while True:
            if self.chunk_left < 0:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                size = int(bytes(buf[:eol]).split(b";")[0], 16)
                if size == 0:  # last chunk; no trailers expected: wait for its closing CRLF too
                    if len(buf) < eol + 4:
                        return
                    self._done()
                    return
                del buf[: eol + 2]
                self.chunk_left = size + 2
            if len(buf) < self.chunk_left:
                return
            chunk = bytes(buf[: self.chunk_left - 2])
            del buf[: self.chunk_left]
            self.chunk_left = -1
            if not self.body_head:
                self.body_head = chunk[:300]
            if self.record_events:
                n = chunk.count(b"data:")
                if n:
                    self.events.extend([t] * n)

    def _done(self) -> None:
        self.buf.clear()
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result(self.status)


def build_request(url: str, body: bytes, extra_headers: list[str]) -> tuple[str, int, bytes]:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = u.path + (f"?{u.query}" if u.query else "")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Authorization: Bearer sk-bench", *extra_headers]
    return host, port, ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def connect(host: str, port: int, record_events: bool = False) -> Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: Conn(record_events), host, port)
    return proto


class Stats:
    def __init__(self) -> None:
        self.lat: list[float] = []
        self.ttft: list[float] = []
        self.ttft_later: list[float] = []  # stream mode: rounds after the first (every pool along the way is warm)
        self.ttft_rounds: dict[int, list[float]] = {}
        self.gaps: list[float] = []
        self.ok = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.events = 0

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


async def run_latency(args: argparse.Namespace) -> dict:
    host, port, req = build_request(args.url, args.body.encode(), [])
    stats = Stats()
    budget = [args.count]
    deadline = now() + args.duration

    async def worker() -> None:
        conn: Conn | None = None
        for _ in range(args.warmup):  # not counted: fills pools on both sides
            try:
                if conn is None or conn.lost:
                    conn = await connect(host, port)
                await asyncio.wait_for(conn.request(req), args.timeout)
            except Exception:
                conn = None
        warmed[0] += 1
        await start.wait()
        while budget[0] > 0 and now() < deadline:
            budget[0] -= 1
            try:
                if conn is None or conn.lost:
                    conn = await connect(host, port)
                t0 = now()
                status = await asyncio.wait_for(conn.request(req), args.timeout)
                dt = now() - t0
            except Exception as exc:
                stats.error(f"{type(exc).__name__}: {exc}")
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
                continue
            if status == 200:
                stats.ok += 1
                stats.lat.append(dt * 1000)
            else:
                stats.error(f"HTTP {status}: {conn.body_head[:200]!r}")
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    start = asyncio.Event()
    warmed = [0]
    tasks = [asyncio.ensure_future(worker()) for _ in range(args.concurrency)]
    while warmed[0] < args.concurrency and now() < deadline:  # the clock starts once every worker is warm
        await asyncio.sleep(0.005)
    t0 = now()
    start.set()
    await asyncio.gather(*tasks)
    elapsed = now() - t0
    return {"mode": "latency", "concurrency": args.concurrency, "ok": stats.ok, "errors": stats.errors,
            "error_samples": stats.error_samples, "elapsed_s": elapsed, "rps": stats.ok / elapsed if elapsed else 0,
            "latency_ms": percentiles(stats.lat)}


async def run_stream(args: argparse.Namespace) -> dict:
    host, port, req = build_request(args.url, args.body.encode(), [])
    stats = Stats()
    deadline = now() + args.duration
    rng = random.Random(1)
    conns: list[Conn | None] = [None] * args.streams
    # connect everybody first (in bounded batches): connection set-up is not what TTFT measures
    for i in range(0, args.streams, 100):
        batch = await asyncio.gather(*(connect(host, port, True) for _ in range(min(100, args.streams - i))),
                                     return_exceptions=True)
        for k, c in enumerate(batch):
            if isinstance(c, BaseException):
                stats.error(f"connect: {c}")
            else:
                conns[i + k] = c
    offsets = [rng.uniform(0, args.ramp) for _ in range(args.streams)]
    t_start = now()

    async def worker(i: int) -> None:
        conn = conns[i]
        await asyncio.sleep(offsets[i])
        for rnd in range(args.rounds):
            if now() >= deadline:
                break
            try:
                if conn is None or conn.lost:
                    conn = await connect(host, port, True)
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                t0 = now()
                try:
                    status = await asyncio.wait_for(conn.request(req), max(0.1, deadline - now()))
                finally:
                    stats.in_flight -= 1
                t1 = now()
            except Exception as exc:
                stats.error(f"{type(exc).__name__}: {exc}")
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
                continue
            ev = conn.events
            if status != 200 or not ev:
                stats.error(f"HTTP {status}, {len(ev)} events: {conn.body_head[:200]!r}")
                continue
            stats.ok += 1
            stats.events += len(ev)
            stats.lat.append((t1 - t0) * 1000)
            stats.ttft.append((ev[0] - t0) * 1000)
            if rnd:
                stats.ttft_later.append((ev[0] - t0) * 1000)
            stats.ttft_rounds.setdefault(rnd, []).append((ev[0] - t0) * 1000)
            stats.gaps.extend((b - a) * 1000 for a, b in zip(ev, ev[1:], strict=False))
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker(i) for i in range(args.streams)))
    elapsed = now() - t_start
    return {"mode": "stream", "streams": args.streams, "ok": stats.ok, "errors": stats.errors,
            "error_samples": stats.error_samples, "elapsed_s": elapsed, "max_open_streams": stats.max_in_flight,
            "events": stats.events, "events_per_s": stats.events / elapsed if elapsed else 0,
            "ttft_ms": percentiles(stats.ttft), "ttft_later_rounds_ms": percentiles(stats.ttft_later),
            "ttft_p50_by_round_ms": [percentiles(v)["p50"] for _, v in sorted(stats.ttft_rounds.items())], "gap_ms": percentiles(stats.gaps),
            "total_ms": percentiles(stats.lat)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    lat = sub.add_parser("latency", help="closed loop: N connections, one request at a time each")
    lat.add_argument("--concurrency", type=int, default=1)
    lat.add_argument("--count", type=int, default=2000, help="measured requests in all (bound)")
    lat.add_argument("--warmup", type=int, default=20, help="unmeasured requests per connection first")
    st = sub.add_parser("stream", help="N concurrent SSE streams, staggered over --ramp seconds")
    st.add_argument("--streams", type=int, default=500)
    st.add_argument("--rounds", type=int, default=2, help="streams per connection, back to back (bound)")
    st.add_argument("--ramp", type=float, default=2.0)
    for q in (lat, st):
        q.add_argument("--url", required=True)
        q.add_argument("--body", required=True)
        q.add_argument("--duration", type=float, default=30.0, help="wall-clock bound in seconds")
        q.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    coro = run_latency(args) if args.mode == "latency" else run_stream(args)
    if uvloop is not None:
        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    result["loop"] = "uvloop" if uvloop is not None else "asyncio"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
