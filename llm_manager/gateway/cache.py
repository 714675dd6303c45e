"""The response cache: exact-match answers to deterministic requests, kept in memory, bounded in bytes.

Embeddings and rerank are deterministic, so a repeat can be answered without the model (without even starting
it); chat and completions only when sampling is pinned (``temperature`` 0 or a ``seed``). The key is the model's
config version (a changed model's old answers can never match), the canonical request body (``stream``,
``stream_options`` and ``user`` do not change the answer) plus the form the answer took (whole, stream, stream
with usage: the stored bytes are what the client received), and the API key's id: a hit is observable (header,
latency), so one key must not learn what another key asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..accounting.record import UsageRecord
from ..config.parse import ModelConfig

MIB = 1024 * 1024
ENTRY_OVERHEAD = 256  # bytes per entry besides its answer: the key, the entry object, the dict slot
CACHED_BY_DEFAULT = frozenset({"Embedding", "Reranker"})  # modes whose answers are always deterministic
SAMPLED = frozenset({"v1/chat/completions", "v1/completions"})  # endpoints whose answers depend on sampling
IRRELEVANT = ("stream", "stream_options", "user")  # body fields that do not change the answer's content


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored answer: the bytes the client received, and what the usage row of a hit says."""

    model: str
    version: str  # the model's config version when it was stored
    content_type: str
    data: bytes
    stream: bool
    prompt_tokens: int
    completion_tokens: int

    @property
    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD


def model_version(model: ModelConfig) -> str:
    """A digest of everything configured for the model: any change (a reload) gives another version."""
    return hashlib.sha256(repr(model).encode()).hexdigest()[:16]


def enabled_for(model: ModelConfig) -> bool:
    """The model's ``cache`` setting; unset: on for embedding and rerank models, off for the others."""
    return model.cache if model.cache is not None else model.mode in CACHED_BY_DEFAULT


def cacheable(model: ModelConfig, endpoint: str, body: Mapping[str, Any]) -> bool:
    """Whether this request's answer is deterministic enough to be stored and replayed."""
    if not enabled_for(model):
        return False
    if endpoint not in SAMPLED:
        return True
    temperature = body.get("temperature")
    seeded = isinstance(body.get("seed"), int) and not isinstance(body.get("seed"), bool)
    return seeded or (temperature == 0 and not isinstance(temperature, bool))


def answer_form(body: Mapping[str, Any]) -> str:
    """What the client receives: a whole answer, a stream, or a stream with the usage chunk."""
    if body.get("stream") is not True:
        return "whole"
    opts = body.get("stream_options")
    return "stream+usage" if isinstance(opts, dict) and opts.get("include_usage") else "stream"


def cache_key(version: str, endpoint: str, body: Mapping[str, Any], key_id: str | None) -> str:
    """The canonical form of a request, hashed: sorted keys, no fields that leave the answer unchanged."""
    canonical = {k: v for k, v in body.items() if k not in IRRELEVANT}
    text = json.dumps([version, endpoint, key_id, answer_form(body), canonical], sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """An LRU of ``Entry`` bounded by the bytes its answers hold (``max_bytes`` 0: nothing is kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._versions: dict[str, tuple[ModelConfig, str]] = {}  # model name -> (config, version), computed once

    def __len__(self) -> int:
        return len(self._entries)

    def version(self, model: ModelConfig) -> str:
        known = self._versions.get(model.name)
        if known is None or known[0] is not model:
            known = self._versions[model.name] = (model, model_version(model))
        return known[1]

    def key_for(self, model: ModelConfig, endpoint: str, body: Mapping[str, Any], key_id: str | None) -> str | None:
        """The key of a request's answer; None when it is not cached (not deterministic, or the cache is off)."""
        if self.max_bytes <= 0 or not cacheable(model, endpoint, body):
            return None
        return cache_key(self.version(model), endpoint, body, key_id)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        """Store an answer, evicting the least recently used ones; one bigger than the whole cache is not kept."""
        if entry.size > self.max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = entry
        self.bytes += entry.size
        self._shrink()
        return True

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._shrink()

    def retain(self, current: Mapping[str, ModelConfig]) -> int:
        """Drop the entries of models removed or changed (a reload); returns how many were dropped."""
        stale = [k for k, e in self._entries.items()
                 if e.model not in current or self.version(current[e.model]) != e.version]
        for k in stale:
            self.bytes -= self._entries.pop(k).size
        self._versions = {n: v for n, v in self._versions.items() if n in current}
        return len(stale)

    def _shrink(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size


async def replay(entry: Entry, reply: Any, rec: UsageRecord, started: float) -> None:
    """A hit: the stored answer as it was first sent (a stream as a stream) to ``reply`` (a ``pipeline.Reply``), no
    model touched; ``rec`` says so (its tokens are the answer's; ``Accounting.finish`` prices cached rows at 0)."""
    rec.status, rec.cached = 200, True
    rec.prompt_tokens, rec.completion_tokens = entry.prompt_tokens, entry.completion_tokens
    try:
        if entry.stream:
            await reply.stream(200, entry.content_type, entry.data)
        else:
            reply.whole(200, entry.content_type, entry.data)
    except asyncio.CancelledError:
        rec.status, rec.error = 499, "client closed the connection"
        raise
    finally:
        rec.ttft_ms = rec.total_ms = (time.monotonic() - started) * 1000
