"""Forward one request upstream with a pooled httpx.AsyncClient, relaying SSE event by event.

The hot path: bodies pass through untouched unless the stream needs ``include_usage`` injected;
per streamed chunk the only work is finding event boundaries and, in the rare event that mentions
``"usage"``, parsing that one event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import UpstreamError, UpstreamTimeout

USAGE_MARK = b'"usage"'
DONE_EVENT = b"data: [DONE]"


def make_client() -> httpx.AsyncClient:
    """One pooled client for every upstream (keep-alive; no env proxies for loopback upstreams)."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(600.0, connect=5.0), trust_env=False)


@dataclass
class Outcome:
    """What the relay observed, for the usage record."""

    status: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_byte: float | None = None  # monotonic time the first byte went to the client
    stream_events: int = 0
    text_chars: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_stream_body(body: dict[str, Any], raw: bytes) -> tuple[bytes, bool]:
    """Ask the upstream for the usage chunk; returns (bytes to send, whether the client wanted usage)."""
    opts = body.get("stream_options")
    wants = isinstance(opts, dict) and bool(opts.get("include_usage"))
    if wants:
        return raw, True
    new_opts = dict(opts) if isinstance(opts, dict) else {}
    new_opts["include_usage"] = True
    return json.dumps({**body, "stream_options": new_opts}, separators=(",", ":")).encode(), False


def _read_usage(obj: Any, out: Outcome) -> bool:
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if isinstance(usage, dict):
        pt = usage.get("prompt_tokens")
        ct = usage.get("completion_tokens")
        if isinstance(pt, int):
            out.prompt_tokens = pt
            out.completion_tokens = ct if isinstance(ct, int) else max(0, int(usage.get("total_tokens", pt)) - pt)
            return True
    return False


def usage_from_body(data: bytes, out: Outcome) -> None:
    """Non-streaming: read ``usage`` from the answer (only parsed when the answer mentions it)."""
    if USAGE_MARK not in data:
        out.text_chars = len(data)
        return
    try:
        _read_usage(json.loads(data), out)
    except ValueError:
        out.text_chars = len(data)


def _filter_event(event: bytes, out: Outcome, hide_usage: bool) -> bytes | None:
    """Sniff usage from one SSE event; drop or trim it when the client did not ask for usage."""
    if USAGE_MARK not in event:
        return event
    payload = event.strip()
    if not payload.startswith(b"data:"):
        return event
    try:
        obj = json.loads(payload[5:])
    except ValueError:
        return event
    if not _read_usage(obj, out) or not hide_usage:
        return event
    if not obj.get("choices"):
        return None  # the usage-only chunk the client did not ask for
    obj.pop("usage", None)
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def relay_stream(resp: httpx.Response, write: Callable[[bytes], Awaitable[None]], out: Outcome,
                       hide_usage: bool) -> None:
    """Relay complete SSE events as they arrive (never batched behind a timer)."""
    buf = b""
    async for chunk in resp.aiter_raw():
        buf += chunk
        end = buf.rfind(b"\n\n")
        if end < 0:
            continue
        complete, buf = buf[: end + 2], buf[end + 2 :]
        out.stream_events += complete.count(b"data:")
        if USAGE_MARK in complete:
            parts = [_filter_event(e + b"\n\n", out, hide_usage) for e in complete.split(b"\n\n")[:-1]]
            complete = b"".join(p for p in parts if p)
            if not complete:
                continue
        if out.first_byte is None:
            out.first_byte = time.monotonic()
        await write(complete)
    if buf.strip():
        if out.first_byte is None:
            out.first_byte = time.monotonic()
        await write(buf)


async def forward(client: httpx.AsyncClient, url: str, content: bytes, stream: bool, timeout: float,
                  on_headers: Callable[[int, str], None], write: Callable[[bytes], Awaitable[None]],
                  hide_usage: bool) -> Outcome:
    """POST ``content`` to ``url`` and relay the answer through ``write``; errors become 502/504."""
    out = Outcome()
    req = client.build_request("POST", url, content=content, headers={"content-type": "application/json"},
                               timeout=httpx.Timeout(timeout, connect=5.0))
    try:
        resp = await client.send(req, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream {url} did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream {url} failed: {type(exc).__name__}: {exc}") from exc
    try:
        out.status = resp.status_code
        ctype = resp.headers.get("content-type", "application/json")
        on_headers(resp.status_code, ctype)
        if stream and resp.status_code == 200 and "text/event-stream" in ctype:
            await relay_stream(resp, write, out, hide_usage)
        else:
            data = await resp.aread()
            out.first_byte = time.monotonic()
            if resp.status_code == 200:
                usage_from_body(data, out)
            else:
                out.error = data[:500].decode("utf-8", errors="replace")
            await write(data)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream {url} stopped sending for {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream {url} broke off: {type(exc).__name__}: {exc}") from exc
    finally:
        await resp.aclose()
    return out
