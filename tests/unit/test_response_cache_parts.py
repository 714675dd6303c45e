"""The response cache's parts: the byte-bounded LRU, the key's canonical form, the per-model policy, its config."""

from __future__ import annotations

import dataclasses

import pytest

from llm_manager.config.parse import ModelConfig, parse_config
from llm_manager.errors import ConfigError
from llm_manager.gateway.cache import (
    ENTRY_OVERHEAD,
    Entry,
    ResponseCache,
    cache_key,
    cacheable,
    enabled_for,
    model_version,
)

CHAT = ModelConfig("chat", "Chat", 9001, ())
EMBED = ModelConfig("embed", "Embedding", 9002, ())
RERANK = ModelConfig("rerank", "Reranker", 9003, ())


def entry(size: int, model: str = "embed", version: str = "v1") -> Entry:
    return Entry(model, version, "application/json", b"x" * (size - ENTRY_OVERHEAD), False, 3, 0)


def test_the_lru_is_bounded_in_bytes_and_evicts_the_least_recently_used() -> None:
    cache = ResponseCache(3000)
    for k in "abc":
        assert cache.put(k, entry(1000))
    assert cache.bytes == 3000 and len(cache) == 3
    assert cache.get("a") is not None  # "a" is now the most recent: "b" goes first
    cache.put("d", entry(1000))
    assert (cache.get("b"), len(cache), cache.bytes) == (None, 3, 3000)
    assert all(cache.get(k) is not None for k in "acd")
    cache.put("e", entry(2500))  # needs room for 2500: three older entries go, oldest first
    assert [k for k in "acde" if cache.get(k) is not None] == ["e"] and cache.bytes == 2500


def test_an_answer_bigger_than_the_cache_is_not_kept_and_size_zero_keeps_nothing() -> None:
    cache = ResponseCache(2000)
    cache.put("a", entry(1000))
    assert not cache.put("big", entry(2001))
    assert cache.get("a") is not None and cache.get("big") is None
    off = ResponseCache(0)
    assert not off.put("a", entry(ENTRY_OVERHEAD + 1)) and len(off) == 0


def test_replacing_an_entry_counts_its_bytes_once_and_resize_evicts() -> None:
    cache = ResponseCache(10_000)
    cache.put("a", entry(1000))
    cache.put("a", entry(3000))
    assert cache.bytes == 3000 and len(cache) == 1
    cache.put("b", entry(1000))
    cache.resize(1500)
    assert cache.get("a") is None and cache.get("b") is not None and cache.bytes == 1000


def test_retain_drops_the_entries_of_changed_and_removed_models() -> None:
    cache = ResponseCache(100_000)
    chat2 = dataclasses.replace(CHAT, description="changed")
    cache.put("e", entry(500, "embed", cache.version(EMBED)))
    cache.put("c", entry(500, "chat", cache.version(CHAT)))
    cache.put("r", entry(500, "rerank", cache.version(RERANK)))
    dropped = cache.retain({"embed": EMBED, "chat": chat2})
    assert dropped == 2 and cache.get("e") is not None and cache.get("c") is None and cache.get("r") is None
    assert cache.bytes == 500


def test_the_key_is_canonical_and_separates_what_changes_the_answer() -> None:
    body = {"model": "m", "input": ["a", "b"], "encoding_format": "float"}
    k = cache_key("v1", "v1/embeddings", body, None)
    reordered = {"encoding_format": "float", "input": ["a", "b"], "model": "m", "user": "someone"}
    assert cache_key("v1", "v1/embeddings", reordered, None) == k  # key order and ``user`` do not matter
    assert cache_key("v2", "v1/embeddings", body, None) != k  # another config version
    assert cache_key("v1", "v1/embeddings", body, "key-a") != k  # another API key
    assert cache_key("v1", "v1/embeddings", {**body, "input": ["b", "a"]}, None) != k
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    whole = cache_key("v1", "v1/chat/completions", chat, None)
    stream = cache_key("v1", "v1/chat/completions", {**chat, "stream": True}, None)
    usage = cache_key("v1", "v1/chat/completions",
                      {**chat, "stream": True, "stream_options": {"include_usage": True}}, None)
    assert len({whole, stream, usage}) == 3  # what the client received differs: stored apart
    assert cache_key("v1", "v1/chat/completions", {**chat, "stream": False}, None) == whole
    assert cache_key("v1", "v1/chat/completions",
                     {**chat, "stream": True, "stream_options": {"include_usage": False}}, None) == stream


def test_policy_per_mode_temperature_seed_and_setting() -> None:
    chat_on = dataclasses.replace(CHAT, cache=True)
    msgs = {"messages": [{"role": "user", "content": "x"}]}
    assert enabled_for(EMBED) and enabled_for(RERANK) and not enabled_for(CHAT)
    assert cacheable(EMBED, "v1/embeddings", {"input": "x"}) and cacheable(RERANK, "v1/rerank", {"query": "q"})
    assert not cacheable(dataclasses.replace(EMBED, cache=False), "v1/embeddings", {"input": "x"})
    assert not cacheable(CHAT, "v1/chat/completions", {**msgs, "temperature": 0})  # off by default for chat
    assert cacheable(chat_on, "v1/chat/completions", {**msgs, "temperature": 0})
    assert cacheable(chat_on, "v1/chat/completions", {**msgs, "temperature": 0.0})
    assert cacheable(chat_on, "v1/completions", {"prompt": "x", "temperature": 0.9, "seed": 7})
    assert not cacheable(chat_on, "v1/chat/completions", {**msgs, "temperature": 0.7})
    assert not cacheable(chat_on, "v1/chat/completions", msgs)  # the server's default temperature samples
    assert not cacheable(chat_on, "v1/chat/completions", {**msgs, "temperature": False, "seed": True})


def test_config_keys_parse_and_change_the_version(tmp_path) -> None:
    def doc(**extra):
        return {"program": {"cache_mb": 8, **extra.pop("program", {})},
                "e": {"mode": "Embedding", "port": 9100, "command": ["x"], **extra}}

    cfg = parse_config(doc(), tmp_path)
    assert cfg.program.cache_mb == 8.0 and cfg.models["e"].cache is None and enabled_for(cfg.models["e"])
    off = parse_config(doc(cache=False), tmp_path).models["e"]
    assert off.cache is False and not enabled_for(off)
    assert model_version(off) != model_version(cfg.models["e"])
    assert model_version(parse_config(doc(), tmp_path).models["e"]) == model_version(cfg.models["e"])  # re-read
    assert parse_config({"program": {}}, tmp_path).program.cache_mb == 64.0
    assert parse_config(doc(program={"cache_mb": 0}), tmp_path).program.cache_mb == 0.0
    with pytest.raises(ConfigError, match=r"program\.cache_mb"):
        parse_config(doc(program={"cache_mb": -1}), tmp_path)
    with pytest.raises(ConfigError, match=r"models\.e\.cache"):
        parse_config(doc(cache="yes"), tmp_path)
