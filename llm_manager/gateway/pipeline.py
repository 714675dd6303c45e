"""The one path of a proxied request: authorize → resolve → validate → admit → lease → forward → account.

In a cluster (``gateway/peers.py``) a model this node does not have, or cannot serve now, is forwarded to another
node that has it, which accounts it; a request another node forwarded is served here only.

The HTTP intake parses bytes into a ``Call`` and hands ``Pipeline.handle`` a ``Reply`` to write the answer to;
a protocol adapter translates its request into a ``Call`` and wraps the ``Reply``; the batch runner passes a
``Reply`` that keeps the answer in memory. Nothing here knows Tornado or any handler object.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from ..accounting.layer import Accounting
from ..accounting.record import UsageRecord
from ..accounting.security import Caller
from ..config.parse import Config
from ..errors import (
    AuthenticationError,
    LLMManagerError,
    QueueFull,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from ..runtime.group import Target
from ..runtime.manager import Manager
from .admission import Admission, Admitted, Call
from .cache import MIB, Entry, ResponseCache, replay
from .peers import NODE_HEADER, Peers
from .protocols.base import Adapter, TranslatingReply
from .relay import Outcome, forward, prepare_stream_body, tell_loading
from .upstream import make_client, make_remote_client

log = logging.getLogger(__name__)

STREAMABLE = frozenset({"v1/chat/completions", "v1/completions"})
CACHE_HEADER = "X-LLM-Manager-Cache"  # hit | miss | bypass, on answers to cacheable requests
MODEL_HEADER = "X-LLM-Manager-Model"  # the model that answered (not the one asked for, after a fallback)
INSTANCE_HEADER = "X-LLM-Manager-Instance"  # the instance id, or the remote upstream's host
RETRY_STATUSES = frozenset({502, 503})  # an upstream answer that says "not me, not now": try another target
PEER_TRIES = 3  # other nodes a request is offered to, at most


class Reply(Protocol):
    """Where an answer goes. ``stream`` sends a piece (the first one with the head); it raises
    ``asyncio.CancelledError`` when the client has gone. ``whole`` sends a complete answer at once."""

    @property
    def started(self) -> bool: ...

    async def stream(self, status: int, content_type: str, data: bytes) -> None: ...

    def whole(self, status: int, content_type: str, data: bytes) -> None: ...

    def header(self, name: str, value: str) -> None:
        """Add a header to the answer (only before it started)."""


class Pipeline:
    """Runs calls through the manager: the only place that orders the steps of a request."""

    def __init__(self, manager: Manager, accounting: Accounting, adapters: tuple[Adapter, ...] = ()):
        self.manager = manager
        self.accounting = accounting
        self.peers = Peers(manager.config.program)  # the other nodes sharing the database (Service feeds it)
        self.admission = Admission(manager, accounting, adapters, self.peers)
        self.http = make_client()  # one pooled client to every local instance; closed by close()
        self.remote_http = make_remote_client()  # remote upstreams (https, proxies from the environment)
        self.cache = ResponseCache(int(manager.config.program.cache_mb * MIB))
        manager.config_hooks.append(self._config_changed)

    async def close(self) -> None:
        await self.http.aclose()
        await self.remote_http.aclose()

    def _config_changed(self, new: Config) -> None:
        """A reload: the cache takes its new bound and frees the answers of changed or removed models."""
        self.cache.resize(int(new.program.cache_mb * MIB))
        self.cache.retain(new.models)
        self.peers.take_config(new.program)

    async def handle(self, call: Call, reply: Reply) -> UsageRecord:
        """Admit, serve and account one call; an error before the answer started is raised for the caller to
        render in its protocol's shape, one after it is told in-band (an SSE error event)."""
        if call.forwarded is not None:
            self._take_forwarded(call)
        ledger = self.accounting.ledger
        if ledger is not None and self.accounting.security.budgets:  # budgets checked against the cluster's spend
            await ledger.fresh()
        admitted = self.admission.admit(call)
        if admitted.local is not None:
            reply.whole(200, "application/json", admitted.local)
            return UsageRecord(model=admitted.model.name, endpoint=admitted.label, status=200, alias=admitted.alias)
        rec = UsageRecord(model=admitted.model.name, endpoint=admitted.label, status=0,
                          alias=admitted.alias, key_id=admitted.key.id if admitted.key else None,
                          client_ip=call.caller.ip, stream=admitted.stream, batch_id=call.batch_id,
                          entry_node=call.entry_node or "")
        # other protocols' answers are not cached (translated, some stored: Responses); nor are other nodes'
        key = None if admitted.elsewhere or call.adapter is not None else self.cache.key_for(
            admitted.model, admitted.endpoint, admitted.body, rec.key_id)
        if key is not None:
            entry = None if call.no_cache else self.cache.get(key)
            reply.header(CACHE_HEADER, "hit" if entry else "bypass" if call.no_cache else "miss")
            if entry is not None:
                try:
                    await replay(entry, reply, rec, call.started)
                finally:
                    self.accounting.finish(rec)
                return rec
            if not call.no_cache:
                self.accounting.metrics.cache_miss(admitted.model.name)
        out = Outcome()
        try:
            await self._serve(call, admitted, reply, rec, out, key)
        except LLMManagerError as exc:
            rec.status, rec.error = exc.status, exc.message
            if not reply.started:
                raise
            log.warning("stream to %s broke off: %s", call.caller.ip or "?", exc.message)
            told = (call.adapter.stream_error(exc) if call.adapter is not None
                    else f"data: {json.dumps(exc.body())}\n\n".encode())
            try:  # mid-stream: tell the client in-band
                await reply.stream(exc.status, "text/event-stream", told)
            except asyncio.CancelledError:
                pass
        except asyncio.CancelledError:
            if out.done:  # the client had the whole answer and hung up: a success
                self._account(rec, out, call, admitted)
            else:
                rec.status, rec.error = 499, "client closed the connection"
            raise
        finally:
            rec.total_ms = (time.monotonic() - call.started) * 1000
            if not rec.forwarded_to:  # a peer served it: that node accounts it (exactly once, in the cluster)
                self.accounting.finish(rec)
        return rec

    def _take_forwarded(self, call: Call) -> None:
        """A request another node forwarded: its cluster secret must be ours; then the key it proved stands in for
        the client's (checked once, at the entry node) and the request is served here, never forwarded again."""
        forwarded = call.forwarded
        assert forwarded is not None
        if not self.peers.verify(forwarded.secret):
            raise AuthenticationError("forwarded request refused: its cluster secret is not this node's "
                                      "(program.cluster_secret)")
        call.entry_node = forwarded.entry or "?"
        call.caller = Caller(None, call.caller.ip, key_id=forwarded.key_id)
        call.batch_id = forwarded.batch_id or call.batch_id  # a batch line: low priority here, counted to its batch

    def _candidates(self, call: Call, admitted: Admitted) -> Iterator[Admitted]:
        """The call as admitted, then admitted for each of its model's fallbacks in order (those the key may not
        use, that cannot take this request or are over budget are skipped)."""
        yield admitted
        tried = {admitted.model.name}
        for name in admitted.model.fallbacks:
            try:
                other = self.admission.admit(call, fallback=name)
            except LLMManagerError as exc:
                log.info("fallback %s of %s skipped: %s", name, admitted.model.name, exc.message)
                continue
            if other.model.name not in tried:
                tried.add(other.model.name)
                yield other

    async def _serve(self, call: Call, admitted: Admitted, reply: Reply, rec: UsageRecord, out: Outcome,
                     key: str | None) -> None:
        """Route: each candidate model (the asked one, then its fallbacks) gets a try and one retry on another
        target; a failure before any byte reached the client moves on, one after it is the client's to see.
        Client errors (4xx) from an upstream are answers, never retried."""
        failure: LLMManagerError | None = None
        unsent: tuple[Admitted, Target, int, str, bytes] | None = None  # an upstream 502/503 nobody else bettered
        for adm in self._candidates(call, admitted):
            avoid: set[str] = set()
            for _attempt in range(0 if adm.elsewhere else 2):
                out.reset()
                try:
                    await self._attempt(call, adm, reply, rec, out, key if adm is admitted else None,
                                        frozenset(avoid))
                    return
                except _TargetFailed as failed:
                    avoid.add(failed.target.id)
                    failure, unsent = failed.error, failed.unsent(adm)
                except (Unavailable, QueueFull) as exc:  # no capacity, start failed, all down, queue full
                    if not avoid:  # (on a retry, "no other target" says less than the failure it retries)
                        failure, unsent = exc, None
                    break
            if call.entry_node is None and self.peers.enabled:  # not here, or not now: a node that has it
                sent = self.admission.for_peer(call, adm)  # the client's own request, in its protocol
                for node, target in self.peers.targets(adm.model.name, avoid)[:PEER_TRIES]:
                    out.reset()
                    try:
                        await self._peer_attempt(call, sent, reply, rec, out, node, target)
                        return
                    except _TargetFailed as failed:
                        avoid.add(failed.target.id)
                        failure, unsent = failed.error, failed.unsent(sent)
        if failure is None and admitted.elsewhere:  # its nodes went down or are cooling off since admission
            failure = Unavailable(f"model {admitted.model.name}: no node that has it answers now",
                                  headers={"Retry-After": "5"})
        if unsent is not None:  # the last word was an upstream's own error answer: the client gets it
            adm, target, status, ctype, body = unsent
            self._served_by(reply, rec, adm, target)
            out.reset()
            out.status, out.body, out.error = status, body, body[:500].decode("utf-8", errors="replace")
            self._reply_for(reply, call, adm).whole(status, ctype, body)
            self._account(rec, out, call, adm)
            return
        assert failure is not None
        raise failure

    async def _peer_attempt(self, call: Call, adm: Admitted, reply: Reply, rec: UsageRecord, out: Outcome,
                            node: str, target: Target) -> None:
        """One try on another node of the cluster (``gateway/peers.py``); raises ``_TargetFailed`` when it failed
        before the client got a byte. Once the node answered, that node accounts the request, not this one."""
        reply.header(NODE_HEADER, node)
        before, rec.forwarded_to = rec.forwarded_to, node
        target.in_flight += 1
        try:
            await self._forward(call, adm, reply, rec, out, None, target, False,
                                self.peers.headers(adm.key.id if adm.key else None, call.batch_id))
        except _TargetFailed as failed:
            if failed.answer is None:  # it never answered: nothing was served (or accounted) there
                rec.forwarded_to = before
                failed.error = Unavailable(f"model {adm.model.name}: node {node} is down ({failed.error.message})",
                                           headers={"Retry-After": "5"})
            raise
        finally:
            target.in_flight -= 1
            target.last_used = time.time()
        self._account(rec, out, call, adm)

    def _reply_for(self, reply: Reply, call: Call, adm: Admitted) -> Reply:
        if adm.translator is not None and call.adapter is not None:
            return TranslatingReply(reply, adm.translator, call.adapter)
        return reply

    def _served_by(self, reply: Reply, rec: UsageRecord, adm: Admitted, target: Target) -> None:
        rec.model, rec.instance = adm.model.name, target.id  # a fallback's answer is accounted to its model
        reply.header(MODEL_HEADER, adm.model.name)
        reply.header(INSTANCE_HEADER, target.id)

    def _content(self, adm: Admitted, target: Target, rename_model: bool = True) -> tuple[bytes, bool]:
        """The bytes sent to ``target`` (the model renamed for a remote upstream that knows it by another name;
        ``include_usage`` asked for on tracked streams) and whether the usage chunk is hidden from the client."""
        body, raw = adm.body, adm.raw
        rename = target.upstream_model if rename_model else None
        if rename is not None and body.get("model") != rename:
            body = {**body, "model": rename}
            raw = json.dumps(body).encode()
        if adm.stream and adm.model.mode in self.manager.config.program.token_tracker and adm.endpoint in STREAMABLE:
            raw, wanted = prepare_stream_body(body, raw)
            return raw, not wanted and adm.translator is None  # a translator reads the usage chunk itself
        return raw, False

    async def _attempt(self, call: Call, adm: Admitted, reply: Reply, rec: UsageRecord, out: Outcome,
                       key: str | None, avoid: frozenset[str]) -> None:
        """One try on one target of ``adm.model``; raises ``_TargetFailed`` when it failed before the client got a
        byte (the caller tries elsewhere)."""
        model = adm.model
        group = self.manager.group(model.name)
        reply.header(MODEL_HEADER, model.name)  # known now: loading comments may start the answer before a target
        feedback = None
        if adm.stream and call.adapter is None and model.loading_feedback and not group.usable():
            feedback = asyncio.ensure_future(tell_loading(reply, model.name, group.load_s))
        try:
            async with self.manager.lease(model.name, call.batch_id is not None, avoid) as (target, timings):
                if feedback is not None:  # before the first byte of the answer: no two writers at once
                    feedback.cancel()
                    await asyncio.gather(feedback, return_exceptions=True)
                rec.start_ms += timings["start_ms"]
                rec.queue_ms += timings["queue_ms"]
                if self.peers.enabled:
                    reply.header(NODE_HEADER, self.peers.node)
                ctype, sent = await self._forward(call, adm, reply, rec, out, key, target, timings["start_ms"] > 0)
        finally:
            if feedback is not None:
                feedback.cancel()
        self._account(rec, out, call, adm)
        if key is not None and out.status == 200 and (out.body is not None or out.done):
            data = out.body if out.body is not None else b"".join(sent or ())
            self.cache.put(key, Entry(model.name, self.cache.version(model), ctype, data,
                                      out.body is None, rec.prompt_tokens, rec.completion_tokens))

    async def _forward(self, call: Call, adm: Admitted, reply: Reply, rec: UsageRecord, out: Outcome,
                       key: str | None, target: Target, cold: bool,
                       extra: dict[str, str] | None = None) -> tuple[str, list[bytes] | None]:
        """Send the call to ``target`` and relay its answer; returns its content type and, for a stream the cache
        keeps, the pieces sent."""
        model = adm.model
        self._served_by(reply, rec, adm, target)
        answer = self._reply_for(reply, call, adm)
        # another protocol's request to another node keeps the name as asked: that node reads it by the protocol's
        # rules (Ollama's ":latest") and answers with it
        content, hide_usage = self._content(adm, target, rename_model=not (extra and call.adapter is not None))
        head: list[Any] = [200, "application/json"]
        sent: list[bytes] | None = [] if key is not None and adm.stream else None  # kept for the cache

        def on_headers(status: int, ctype: str) -> None:
            head[:] = [status, ctype]

        async def write(data: bytes) -> None:
            await answer.stream(head[0], head[1], data)
            if sent is not None:
                sent.append(data)

        url = target.url(adm.endpoint)
        client = self.http if url.startswith("http://") else self.remote_http
        try:
            await forward(client, url, content, adm.stream, model.request_timeout, on_headers, write, hide_usage,
                          out, name=f"model {model.name}", headers={**target.headers, **extra} if extra else target.headers)
        except UpstreamTimeout:
            raise
        except UpstreamError as exc:
            if reply.started:
                raise
            target.failed(exc.message)
            raise _TargetFailed(target, exc) from None
        if out.status >= 500:
            target.failed(f"answered {out.status}")
        else:
            target.answered(out.first_byte, cold)
        if out.body is not None and out.status in RETRY_STATUSES:
            raise _TargetFailed(target, UpstreamError(f"model {model.name} answered {out.status}"),
                                (out.status, head[1], out.body))
        if out.body is not None and reply.started:  # loading comments went first: the answer joins the stream
            await answer.stream(head[0], "text/event-stream", b"data: " + out.body.strip() + b"\n\n")
        elif out.body is not None:  # a whole answer: one write with Content-Length, not chunked pieces
            answer.whole(head[0], head[1], out.body)
        elif not reply.started:  # a stream that sent no event at all
            await answer.stream(head[0], head[1], b"")
        if isinstance(answer, TranslatingReply):
            await answer.end()
        return head[1], sent

    def _account(self, rec: UsageRecord, out: Outcome, call: Call, admitted: Admitted) -> None:
        """Fill the usage record from what the relay saw; estimate tokens when the upstream gave none."""
        rec.status = out.status
        rec.error = out.error
        if out.first_byte is not None:
            rec.ttft_ms = (out.first_byte - call.started) * 1000
        free = call.adapter is not None and call.adapter.paths.get(call.path) in call.adapter.free
        if out.prompt_tokens is not None:
            rec.prompt_tokens, rec.completion_tokens = out.prompt_tokens, out.completion_tokens or 0
        elif out.status == 200 and not free and admitted.model.mode in self.manager.config.program.token_tracker:
            rec.estimated = True
            rec.prompt_tokens = max(1, len(admitted.raw) // 4)
            rec.completion_tokens = out.stream_events if admitted.stream else max(0, out.text_chars // 4)


class _TargetFailed(Exception):
    """A target failed a request before any byte of the answer reached the client."""

    def __init__(self, target: Target, error: LLMManagerError, answer: tuple[int, str, bytes] | None = None):
        super().__init__(error.message)
        self.target = target
        self.error = error
        self.answer = answer  # the upstream's own error answer (status, content type, body), not sent

    def unsent(self, adm: Admitted) -> tuple[Admitted, Target, int, str, bytes] | None:
        return None if self.answer is None else (adm, self.target, *self.answer)
