"""Deterministic request parsing and payload builders for the fake llama-server.

Kept apart from the HTTP server so tests and benchmarks can compute the exact answer a
request will get (same prompt -> same words, same vectors, same scores) without a server.
Shapes follow llama.cpp's ``llama-server`` OpenAI-compatible endpoints.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

WORDS: tuple[str, ...] = (
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "jade",
    "kite", "lumen", "maple", "nova", "onyx", "pearl", "quartz", "river", "sage", "tide",
    "umber", "vale", "willow", "xenon", "yarrow", "zephyr", "amber", "basil", "coral", "dune",
    "echo", "flint", "glade", "haze", "ivory", "juniper", "kelp", "lark", "moss", "nectar",
    "olive", "prism", "quill", "reed", "slate", "thistle", "ultra", "vesper", "wren", "yew",
)  # fmt: skip

_WORD_RE = re.compile(r"\w+")


class RequestError(Exception):
    """A request the fake backend refuses; rendered with llama-server's error body shape."""

    def __init__(self, message: str, code: int = 400, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type_


def error_body(code: int, message: str, type_: str) -> dict[str, Any]:
    """llama-server's error shape (``{"error": {code, message, type}}``), not OpenAI's."""
    return {"error": {"code": code, "message": message, "type": type_}}


def seed_of(text: str) -> int:
    """Stable across processes and runs, unlike ``hash()``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def count_words(text: str) -> int:
    return len(text.split())


def generate_tokens(prompt: str, n: int) -> list[str]:
    """``n`` "tokens" (a word plus a space each), fixed for a given prompt."""
    rng = random.Random(seed_of(prompt))
    return [rng.choice(WORDS) + " " for _ in range(max(n, 0))]


@dataclass
class GenerationRequest:
    """The parts of a chat/completions request the fake backend acts on."""

    prompt: str
    prompt_tokens: int
    n_tokens: int
    limited: bool  # True when the client set max_tokens: finishing then means "length"
    stream: bool
    include_usage: bool

    @property
    def finish_reason(self) -> str:
        return "length" if self.limited else "stop"

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.n_tokens,
                "total_tokens": self.prompt_tokens + self.n_tokens}


def _content_text(content: Any) -> str:
    """Message content may be a string, null, or a list of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _prompt_text(prompt: Any) -> tuple[str, int]:
    """Text and token count of a completions ``prompt`` (string, strings, token ids or lists of ids)."""
    if isinstance(prompt, str):
        return prompt, count_words(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return " ".join(map(str, prompt)), len(prompt)
        if all(isinstance(p, str) for p in prompt):
            return "\n".join(prompt), sum(count_words(p) for p in prompt)
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return "\n".join(" ".join(map(str, p)) for p in prompt), sum(len(p) for p in prompt)
    raise RequestError('"prompt" must be a string, a list of strings or a list of token ids')


def parse_generation(body: dict[str, Any], *, chat: bool, default_tokens: int) -> GenerationRequest:
    """Validate a chat/completions body like llama-server does (400 on missing or malformed fields)."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' is required and must be a non-empty array")
        parts: list[str] = []
        prompt_tokens = 0
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise RequestError("each message must be an object with a 'role' string")
            text = _content_text(message.get("content"))
            parts.append(f"{message['role']}: {text}")
            prompt_tokens += count_words(text) + 4
        prompt = "\n".join(parts)
    else:
        if "prompt" not in body:
            raise RequestError('"prompt" must be provided')
        prompt, prompt_tokens = _prompt_text(body["prompt"])
    limit = next((body[k] for k in ("max_tokens", "max_completion_tokens", "n_predict") if body.get(k) is not None), None)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise RequestError("'max_tokens' must be an integer")
    limited = limit is not None and limit >= 0  # llama-server reads -1 as "no limit"
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    return GenerationRequest(prompt=prompt, prompt_tokens=prompt_tokens,
                             n_tokens=limit if limited else default_tokens, limited=limited,
                             stream=bool(body.get("stream")), include_usage=include_usage)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def chat_completion(model: str, req: GenerationRequest, tokens: list[str], *, cid: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    return {
        "id": cid or new_id("chatcmpl"), "object": "chat.completion",
        "created": created if created is not None else int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                     "finish_reason": req.finish_reason, "logprobs": None}],
        "usage": req.usage(),
    }


def text_completion(model: str, req: GenerationRequest, tokens: list[str], *, cid: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    return {
        "id": cid or new_id("cmpl"), "object": "text_completion",
        "created": created if created is not None else int(time.time()), "model": model,
        "choices": [{"index": 0, "text": "".join(tokens), "finish_reason": req.finish_reason, "logprobs": None}],
        "usage": req.usage(),
    }


def chat_chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None = None,
               ) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


def completion_chunk(cid: str, created: int, model: str, text: str, finish_reason: str | None = None,
                     ) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]}


def usage_chunk(obj: str, cid: str, created: int, model: str, usage: dict[str, int]) -> dict[str, Any]:
    """The trailing ``stream_options.include_usage`` chunk: no choices, only usage."""
    return {"id": cid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage}


def models_list(model: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "llamacpp"}]}


# --- embeddings ---------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


@lru_cache(maxsize=8192)
def _unit_seed_vector(key: str, dim: int) -> np.ndarray:
    return np.random.default_rng(seed_of(key)).standard_normal(dim)


def embed_text(text: str, dim: int) -> list[float]:
    """Unit vector = sum of per-word vectors plus a per-text term: texts sharing words point the same way."""
    vec = _unit_seed_vector("\x00text:" + text, dim) * 0.25
    for word in _words(text):
        vec = vec + _unit_seed_vector(word, dim)
    return (vec / np.linalg.norm(vec)).tolist()


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """``input`` as texts: a string, strings, token ids (one input) or lists of token ids."""
    value = body.get("input", body.get("content"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    raise RequestError('"input" must be a string, a list of strings or a list of token ids')


def embeddings(model: str, texts: list[str], dim: int) -> dict[str, Any]:
    n = sum(max(count_words(t), 1) for t in texts)
    return {
        "object": "list", "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": embed_text(t, dim)} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": n, "total_tokens": n},
    }


# --- rerank -------------------------------------------------------------------------------------

def relevance(query: str, document: str) -> float:
    """Cosine of the two word sets: 0 with no shared word, 1 for the same words."""
    q, d = set(_words(query)), set(_words(document))
    if not q or not d:
        return 0.0
    return len(q & d) / math.sqrt(len(q) * len(d))


def rerank(model: str, body: dict[str, Any]) -> dict[str, Any]:
    query, documents = body.get("query"), body.get("documents", body.get("texts"))
    if not isinstance(query, str):
        raise RequestError('"query" must be provided')
    if not isinstance(documents, list) or not documents:
        raise RequestError('"documents" must be a non-empty array')
    texts = [d.get("text") if isinstance(d, dict) else d for d in documents]
    if not all(isinstance(t, str) for t in texts):
        raise RequestError('"documents" must be strings')
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 0):
        raise RequestError('"top_n" must be a non-negative integer')
    scored = sorted(((relevance(query, t), i) for i, t in enumerate(texts)), key=lambda s: (-s[0], s[1]))
    n = count_words(query) * len(texts) + sum(count_words(t) for t in texts)
    return {
        "model": model, "object": "list", "usage": {"prompt_tokens": n, "total_tokens": n},
        "results": [{"index": i, "relevance_score": score} for score, i in scored[:top_n]],
    }
