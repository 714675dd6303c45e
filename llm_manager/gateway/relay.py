"""Forward one request upstream through httpx (``upstream.py``'s transport), relaying SSE event by event.

The hot path. Bodies pass through untouched unless a stream needs ``include_usage`` added (a byte splice, no
re-serialising); per streamed chunk the only work is finding event boundaries and, in the rare event
that mentions ``"usage"``, parsing that one event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import UpstreamError, UpstreamTimeout

log = logging.getLogger("llm_manager.gateway.relay")

USAGE_MARK = b'"usage"'


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
    body: bytes | None = None  # a non-streamed answer, for the caller to send in one piece
    done: bool = False  # the client was sent the stream's [DONE]: the answer is complete

    def reset(self) -> None:
        """Forget a failed try (the request goes to another target)."""
        self.__init__()  # type: ignore[misc]


_STREAM_OPTS = b'{"stream_options":{"include_usage":true},'


def prepare_stream_body(body: dict[str, Any], raw: bytes) -> tuple[bytes, bool]:
    """Ask the upstream for the usage chunk; returns (bytes to send, whether the client wanted usage).

    The client's bytes are kept: without ``stream_options`` the key is spliced in after the opening brace.
    """
    opts = body.get("stream_options")
    wants = isinstance(opts, dict) and bool(opts.get("include_usage"))
    if wants:
        return raw, True
    if "stream_options" not in body:
        start = raw.find(b"{")
        if start >= 0 and raw[:start].strip() == b"":
            return _STREAM_OPTS + raw[start + 1:], False
    new_opts = dict(opts) if isinstance(opts, dict) else {}
    new_opts["include_usage"] = True
    return json.dumps({**body, "stream_options": new_opts}, separators=(",", ":")).encode(), False


def _read_usage(obj: Any, out: Outcome) -> bool:
    """Token counts from an answer or event, in OpenAI's shape or, relayed natively, Anthropic's (``message_start``
    carries the input, ``message_delta`` the output) and the Responses API's (``response.completed``)."""
    if not isinstance(obj, dict):
        return False
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        inner = obj.get("message") or obj.get("response")
        usage = inner.get("usage") if isinstance(inner, dict) else None
        if not isinstance(usage, dict):
            return False
    pt = usage.get("prompt_tokens")
    if isinstance(pt, int):
        ct = usage.get("completion_tokens")
        out.prompt_tokens = pt
        out.completion_tokens = ct if isinstance(ct, int) else max(0, int(usage.get("total_tokens", pt)) - pt)
        return True
    it, ot = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(it, int) and not isinstance(ot, int):
        return False
    if isinstance(it, int):
        out.prompt_tokens = it + int(usage.get("cache_read_input_tokens") or 0)
    elif out.prompt_tokens is None:
        out.prompt_tokens = 0
    if isinstance(ot, int):
        out.completion_tokens = ot
    return True


_decoder = json.JSONDecoder()


def usage_from_body(data: bytes, out: Outcome) -> None:
    """Non-streaming: read ``usage`` from the answer, decoding only the usage object when it can be found.

    When no usage can be read (none, ``null``, no integer ``prompt_tokens``), the answer's length is kept for an
    estimate."""
    at = data.rfind(USAGE_MARK)
    if at >= 0:
        brace = data.find(b"{", at + len(USAGE_MARK))
        if brace >= 0 and data[at + len(USAGE_MARK):brace].strip() == b":":
            try:  # usage comes last in OpenAI-style answers: decode just that object
                usage, _ = _decoder.raw_decode(data[brace:brace + 2048].decode("utf-8", errors="replace"))
                if _read_usage({"usage": usage}, out):
                    return
            except ValueError:
                pass
        try:
            if _read_usage(json.loads(data), out):
                return
        except ValueError:
            pass
    out.text_chars = len(data)


def _filter_event(event: bytes, out: Outcome, hide_usage: bool, sep: bytes = b"\n\n") -> bytes | None:
    """Sniff usage from one SSE event (``event`` ends with ``sep``); drop or trim it when the client did not ask.

    The ``data:`` line need not be the first: ``event:`` and ``id:`` field lines before it are kept."""
    if USAGE_MARK not in event:
        return event
    lines = event.strip().splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(b"data:")), None)
    if at is None:
        return event
    try:
        obj = json.loads(lines[at][5:])
    except ValueError:
        return event
    if not _read_usage(obj, out) or not hide_usage:
        return event
    if not obj.get("choices"):
        return None  # the usage-only chunk the client did not ask for
    obj.pop("usage", None)
    lines[at] = b"data: " + json.dumps(obj, separators=(",", ":")).encode()
    return (b"\r\n" if sep == b"\r\n\r\n" else b"\n").join(lines) + sep


async def relay_stream(pieces: AsyncIterator[bytes], write: Callable[[bytes], Awaitable[None]], out: Outcome,
                       hide_usage: bool) -> None:
    """Relay complete SSE events as they arrive (never batched behind a timer)."""
    buf = b""
    complete = b""
    async for chunk in pieces:
        if buf:
            buf += chunk
        else:
            buf = chunk
        if buf.endswith(b"\n\n"):  # the usual case: the read ended on an event boundary
            complete, buf = buf, b""
        else:
            end = buf.rfind(b"\n\n")
            if end < 0:
                end = buf.rfind(b"\r\n\r\n")  # servers that frame events with CRLF
                if end < 0:
                    continue
                end += 2
            complete, buf = buf[: end + 2], buf[end + 2 :]
        out.stream_events += complete.count(b"data:")
        if USAGE_MARK in complete:  # rare: the one event with usage in it is parsed
            sep = b"\r\n\r\n" if b"\r\n\r\n" in complete else b"\n\n"
            parts = [_filter_event(e + sep, out, hide_usage, sep) for e in complete.split(sep)[:-1]]
            complete = b"".join(p for p in parts if p)
            if not complete:
                continue
        if out.first_byte is None:
            out.first_byte = time.monotonic()
        await write(complete)
        if complete.rstrip().endswith(b"[DONE]"):
            out.done = True  # clients (the openai SDK) may hang up now, before the upstream's body ends
    if buf.strip():
        if out.first_byte is None:
            out.first_byte = time.monotonic()
        out.stream_events += buf.count(b"data:")
        await write(buf)
        complete = buf
    if complete.rstrip().endswith(b"[DONE]"):
        out.stream_events -= 1  # the terminator is no content event


async def relay_lines(pieces: AsyncIterator[bytes], write: Callable[[bytes], Awaitable[None]], out: Outcome) -> None:
    """Relay complete NDJSON lines as they arrive (another node's answer in Ollama's protocol: that node counts
    its usage, this one only passes it on)."""
    buf = b""
    async for chunk in pieces:
        buf += chunk
        end = buf.rfind(b"\n")
        if end < 0:
            continue
        complete, buf = buf[: end + 1], buf[end + 1 :]
        if out.first_byte is None:
            out.first_byte = time.monotonic()
        out.stream_events += complete.count(b"\n")
        await write(complete)
    if buf.strip():
        out.first_byte = out.first_byte or time.monotonic()
        out.stream_events += 1
        await write(buf)


LOADING_FIRST = 1.0  # seconds a stream waits before the first loading comment (most refusals come sooner)
LOADING_EVERY = 1.0


async def tell_loading(reply: Any, model: str, expected: float | None) -> None:
    """SSE comments to ``reply`` (a ``pipeline.Reply``) while a stream waits for a cold start (``: loading
    demo-chat — 1.2 s of about 3 s``): clients ignore comment lines, a person with curl sees why nothing comes.
    Cancelled when the model is ready."""
    began = time.monotonic()
    await asyncio.sleep(LOADING_FIRST)
    while True:
        elapsed = time.monotonic() - began
        about = f" of about {expected:.0f} s" if expected else ""
        await reply.stream(200, "text/event-stream", f": loading {model} — {elapsed:.1f} s{about}\n\n".encode())
        await asyncio.sleep(LOADING_EVERY)


_HEADERS = {"Content-Type": "application/json", "Accept": "*/*"}
_urls: dict[str, httpx.URL] = {}


def _url(url: str) -> httpx.URL:
    """httpx.URL of ``url``, parsed once (a handful of upstream URLs repeat forever)."""
    parsed = _urls.get(url)
    if parsed is None:
        parsed = httpx.URL(url)
        if len(_urls) < 4096:
            _urls[url] = parsed
    return parsed


_ADDRESS = re.compile(r"https?://\S+|\(\s*'[^']*',\s*\d+\s*\)|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def _failure(exc: Exception, name: str, url: str, what: str) -> str:
    """A client-facing failure text: the model's name, never the internal upstream address (logged instead)."""
    log.warning("upstream %s (%s) %s: %s: %s", url, name, what, type(exc).__name__, exc)
    detail = _ADDRESS.sub("the model server", str(exc)).strip()
    return f"{name} {what}: {type(exc).__name__}" + (f": {detail}" if detail else "")


async def forward(client: httpx.AsyncClient, url: str, content: bytes, stream: bool, timeout: float,
                  on_headers: Callable[[int, str], None], write: Callable[[bytes], Awaitable[None]],
                  hide_usage: bool, out: Outcome | None = None, name: str = "the model server",
                  headers: Mapping[str, str] | None = None) -> Outcome:
    """POST ``content`` to ``url``; errors become 502/504 naming ``name`` (the client never sees ``url``).

    A streamed (SSE) answer is relayed through ``write`` as it arrives; any other answer is read whole
    and left in ``Outcome.body`` for the caller to send in one piece (one write, with Content-Length).
    ``timeout`` bounds how long the upstream may stay silent, not the whole answer.
    """
    out = out if out is not None else Outcome()
    request = httpx.Request("POST", _url(url), content=content, headers={**_HEADERS, **headers} if headers else _HEADERS,
                            extensions={"timeout": {"connect": 5.0, "read": timeout, "write": timeout,
                                                    "pool": timeout}})
    try:
        resp = await client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        log.warning("upstream %s (%s) did not answer within %g s", url, name, timeout)
        raise UpstreamTimeout(f"{name} did not answer within {timeout:g} s (request_timeout)") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(_failure(exc, name, url, "failed")) from exc
    try:
        out.status = resp.status_code
        ctype = resp.headers.get("content-type", "application/json")
        on_headers(resp.status_code, ctype)
        if stream and resp.status_code == 200 and "text/event-stream" in ctype:
            await relay_stream(resp.aiter_raw(), write, out, hide_usage)
        elif stream and resp.status_code == 200 and "ndjson" in ctype:  # Ollama's stream, from another node
            await relay_lines(resp.aiter_raw(), write, out)
        else:
            data = await resp.aread()
            out.first_byte = time.monotonic()
            if resp.status_code == 200:
                usage_from_body(data, out)
            else:
                out.error = data[:500].decode("utf-8", errors="replace")
            out.body = data
    except httpx.TimeoutException as exc:
        log.warning("upstream %s (%s) stopped sending for %g s", url, name, timeout)
        raise UpstreamTimeout(f"{name} stopped sending for {timeout:g} s (request_timeout)") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(_failure(exc, name, url, "broke off")) from exc
    finally:
        await resp.aclose()
    return out
