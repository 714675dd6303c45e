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


SYSTEM_FINGERPRINT = "b0-fake"  # llama-server sends "b<build>-<commit>" in every generation answer
OWNED_BY = "llamacpp"


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

    def usage(self) -> dict[str, Any]:
        """llama-server's usage block, ``prompt_tokens_details`` included (the fake caches nothing)."""
        return {"completion_tokens": self.n_tokens, "prompt_tokens": self.prompt_tokens,
                "total_tokens": self.prompt_tokens + self.n_tokens,
                "prompt_tokens_details": {"cached_tokens": 0}}

    def timings(self, tokens_per_second: float = 0.0) -> dict[str, Any]:
        return timings(self.prompt_tokens, self.n_tokens, tokens_per_second)


def timings(prompt_n: int, predicted_n: int, tokens_per_second: float = 0.0) -> dict[str, Any]:
    """llama-server's ``timings`` block (sent with every finished generation); plausible figures."""
    prompt_ms = 0.1 * prompt_n
    predicted_ms = 1000.0 * predicted_n / tokens_per_second if tokens_per_second > 0 else 0.1 * predicted_n

    def per_token(ms: float, n: int) -> float:
        return ms / n if n else 0.0

    def per_second(ms: float, n: int) -> float:
        return 1000.0 * n / ms if ms else 0.0

    return {"cache_n": 0, "prompt_n": prompt_n, "prompt_ms": prompt_ms,
            "prompt_per_token_ms": per_token(prompt_ms, prompt_n),
            "prompt_per_second": per_second(prompt_ms, prompt_n),
            "predicted_n": predicted_n, "predicted_ms": predicted_ms,
            "predicted_per_token_ms": per_token(predicted_ms, predicted_n),
            "predicted_per_second": per_second(predicted_ms, predicted_n)}


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
    """Validate a chat/completions body like llama-server does (same statuses and error types)."""
    if chat:
        if "messages" not in body:
            raise RequestError("'messages' is required")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise RequestError("Expected 'messages' to be an array")
        parts: list[str] = []
        prompt_tokens = 0
        for message in messages:  # llama-server accepts an empty list (and generates from nothing)
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                # llama-server's chat-template parser throws here: a 500 server_error, not a 400
                raise RequestError(f"Failed to parse messages: Missing 'role' in message: {message}",
                                   500, "server_error")
            text = _content_text(message.get("content"))
            parts.append(f"{message['role']}: {text}")
            prompt_tokens += count_words(text) + 4
        prompt = "\n".join(parts)
    else:
        if "prompt" not in body:
            raise RequestError("[json.exception.out_of_range.403] key 'prompt' not found")
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
                    created: int | None = None, tokens_per_second: float = 0.0) -> dict[str, Any]:
    """A non-streaming chat answer with llama-server's keys (no ``logprobs`` in the choice unless asked)."""
    return {
        "choices": [{"finish_reason": req.finish_reason, "index": 0,
                     "message": {"role": "assistant", "content": "".join(tokens)}}],
        "created": created if created is not None else int(time.time()), "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT, "object": "chat.completion", "usage": req.usage(),
        "id": cid or new_id("chatcmpl"), "timings": req.timings(tokens_per_second),
    }


def text_completion(model: str, req: GenerationRequest, tokens: list[str], *, cid: str | None = None,
                    created: int | None = None, tokens_per_second: float = 0.0) -> dict[str, Any]:
    """A non-streaming completion; llama-server keeps ``logprobs: null`` here and ids start "chatcmpl-"."""
    return {
        "choices": [{"text": "".join(tokens), "index": 0, "logprobs": None, "finish_reason": req.finish_reason}],
        "created": created if created is not None else int(time.time()), "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT, "object": "text_completion", "usage": req.usage(),
        "id": cid or new_id("chatcmpl"), "timings": req.timings(tokens_per_second),
    }


def chat_chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``extra`` adds ``timings`` to the finishing chunk."""
    return {"choices": [{"finish_reason": finish_reason, "index": 0, "delta": delta}], "created": created,
            "id": cid, "model": model, "system_fingerprint": SYSTEM_FINGERPRINT,
            "object": "chat.completion.chunk", **extra}


def completion_chunk(cid: str, created: int, model: str, text: str, finish_reason: str | None = None,
                     **extra: Any) -> dict[str, Any]:
    """One streamed ``text_completion`` event; the finishing one carries ``usage`` and ``timings`` always."""
    return {"choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
            "created": created, "model": model, "system_fingerprint": SYSTEM_FINGERPRINT,
            "object": "text_completion", "id": cid, **extra}


def usage_chunk(obj: str, cid: str, created: int, model: str, usage: dict[str, Any],
                timings_: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trailing ``stream_options.include_usage`` chat chunk: empty choices, usage and timings."""
    chunk = {"choices": [], "created": created, "id": cid, "model": model,
             "system_fingerprint": SYSTEM_FINGERPRINT, "object": obj, "usage": usage}
    if timings_ is not None:
        chunk["timings"] = timings_
    return chunk


def models_list(model: str, created: int, embedding_dim: int = 64) -> dict[str, Any]:
    """``/v1/models`` as llama-server answers it: an Ollama-style ``models`` list next to OpenAI's ``data``."""
    ollama = {"name": model, "model": model, "modified_at": "", "size": "", "digest": "", "type": "model",
              "description": "", "tags": [""], "capabilities": ["completion"], "parameters": "",
              "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""],
                          "parameter_size": "", "quantization_level": ""}}
    meta = {"vocab_type": 2, "n_vocab": len(WORDS), "n_ctx": 2048, "n_ctx_train": 2048, "n_embd": embedding_dim,
            "n_params": 0, "size": 0, "ftype": "fake"}
    return {"models": [ollama], "object": "list",
            "data": [{"id": model, "aliases": [model], "tags": [], "object": "model",
                      "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
                      "created": created, "owned_by": OWNED_BY, "meta": meta}]}


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
    """``input`` as texts: a string, strings, token ids (one input) or lists of token ids; as llama-server,
    no input, an empty list or an empty text is a 400."""
    if "input" not in body and "content" not in body:
        raise RequestError('"input" or "content" must be provided')
    value = body.get("input", body.get("content"))
    if isinstance(value, list) and not value:
        raise RequestError('"input" must not be empty')
    texts: list[str] | None = None
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            texts = [" ".join(map(str, value))]
        elif all(isinstance(v, str) for v in value):
            texts = list(value)
        elif all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            texts = [" ".join(map(str, v)) for v in value]
    if texts is None:
        raise RequestError('"prompt" elements must be a string, a list of tokens, a JSON object containing a '
                           'prompt string, or a list of mixed strings & tokens.')
    if any(t == "" for t in texts):
        raise RequestError("Input content cannot be empty")
    return texts


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
