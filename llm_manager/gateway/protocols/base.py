"""What a client protocol adapter is, and the Reply that translates an OpenAI answer back into it.

An adapter knows its paths, where its requests name the model, its error shape, and how to translate a request
into a chat-completions (or embeddings) request and the answer back, for models whose server does not speak the
protocol itself. For a server that does (a model's ``protocols`` list), the pipeline relays the request untouched
to ``native[op]``. Nothing here knows HTTP: the pipeline and the transports drive it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import BadRequest, LLMManagerError, UpstreamError


class AnswerTranslator:
    """Turns one OpenAI answer into the client protocol's: a whole JSON answer, or a stream piece by piece.

    ``feed`` receives complete SSE events of chat completions (usage chunk included) and returns the bytes to
    send now (possibly none); ``close`` returns what ends the stream (called once the upstream stream ended).
    """

    content_type = "text/event-stream"  # of a streamed answer
    whole_content_type = "application/json"

    def whole(self, data: bytes) -> bytes:
        raise NotImplementedError

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        return b""

    def failed(self, status: int, data: bytes) -> bytes | None:
        """A 200 answer despite an upstream error (e.g. an estimate when an auxiliary endpoint is missing);
        None: the error is told in the protocol's shape."""
        return None


class TokenizeCount(AnswerTranslator):
    """A count of input tokens from the model server's ``/tokenize`` (its real tokenizer over the request's text,
    chat template not included); a server without one (404/405/501) gets an estimate of 4 characters a token.
    Subclasses give the protocol's answer shape."""

    def __init__(self, text: str):
        self.text = text

    def shape(self, tokens: int, estimated: bool) -> dict[str, Any]:
        raise NotImplementedError

    def whole(self, data: bytes) -> bytes:
        tokens = json.loads(data).get("tokens")
        if not isinstance(tokens, list):
            return self.estimate()
        return json.dumps(self.shape(len(tokens), False)).encode()

    def failed(self, status: int, data: bytes) -> bytes | None:
        return self.estimate() if status in (404, 405, 501) else None

    def estimate(self) -> bytes:
        return json.dumps(self.shape(max(1, (len(self.text) + 3) // 4), True)).encode()

    def feed(self, data: bytes) -> bytes:  # /tokenize never streams
        return b""


def chat_text(chat: dict[str, Any]) -> str:
    """What a model reads of a chat-completions request, as text for a tokenizer: each turn with its role, then
    the tools (no chat template: a count from it is a few tokens short)."""
    lines = []
    for message in chat.get("messages", ()):
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
        lines.append(f"{message['role']}: {content or ''}")
        lines.extend(json.dumps(call["function"]) for call in message.get("tool_calls", ()))
    lines.extend(json.dumps(tool["function"]) for tool in chat.get("tools", ()))
    return "\n".join(lines)


class Adapter:
    """One client protocol. Subclasses fill in the class attributes and the translation methods."""

    name = ""  # as written in a model's "protocols" list
    paths: Mapping[str, str] = {}  # request path (no leading slash) -> operation
    native: Mapping[str, str] = {}  # operation -> upstream path, when the model's server speaks the protocol
    labels: Mapping[str, str] = {}  # operation -> the usage rows' endpoint
    auxiliary: frozenset[str] = frozenset()  # upstream paths no interface plugin lists (a tokenizer): not checked
    free: frozenset[str] = frozenset()  # operations that generate nothing (counting tokens): no token estimate

    def model_of(self, op: str, body: dict[str, Any]) -> Any:
        return body.get("model")

    def names(self, name: str) -> tuple[str, ...]:
        """The spellings of a model asked for as ``name`` that another node may know it by (Ollama's without
        ``:latest``): the entry node finds a peer's model by them."""
        return (name,)

    def streams(self, op: str, body: dict[str, Any]) -> bool:
        """Whether the answer to ``body`` is a stream (relayed piece by piece when another node serves it)."""
        return body.get("stream") is True

    def to_openai(self, op: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        """The OpenAI endpoint and body that do what ``body`` asks (400 via BadRequest when it cannot)."""
        raise NotImplementedError

    def translator(self, op: str, body: dict[str, Any], model: str) -> AnswerTranslator:
        raise NotImplementedError

    def error_body(self, exc: LLMManagerError) -> bytes:
        """An error in this protocol's shape (the status stays ``exc.status``)."""
        return json.dumps(exc.body()).encode()

    def stream_error(self, exc: LLMManagerError) -> bytes:
        """An error told in-band, once a streamed answer has started."""
        return b"data: " + self.error_body(exc) + b"\n\n"

    def to_native(self, op: str, body: dict[str, Any], raw: bytes, model: str) -> tuple[bytes, AnswerTranslator | None]:
        """The bytes relayed to a server that speaks the protocol, and what watches its answer (None: nothing)."""
        return raw, None

    def local(self, op: str, body: dict[str, Any], model: str) -> bytes | None:
        """An answer the manager gives itself, without the model (e.g. counting tokens); None: ask the model."""
        return None


class TranslatingReply:
    """A Reply in front of another: OpenAI answers go in, the client protocol's answers come out."""

    def __init__(self, inner: Any, translator: AnswerTranslator, adapter: Adapter):
        self.inner = inner
        self.translator = translator
        self.adapter = adapter
        self.streamed = False  # the answer went out as a stream (then close() ends it)

    @property
    def started(self) -> bool:
        return bool(self.inner.started)

    async def stream(self, status: int, content_type: str, data: bytes) -> None:
        if status != 200:  # an upstream error relayed as a stream: say it in the protocol's shape
            await self.inner.stream(status, "application/json", self.adapter.error_body(upstream_error(status, data)))
            return
        self.streamed = True
        out = self.translator.feed(data) if data else b""
        if out or not self.inner.started:
            await self.inner.stream(status, self.translator.content_type, out)

    def header(self, name: str, value: str) -> None:
        self.inner.header(name, value)

    async def end(self) -> None:
        """Send what closes the stream (if the answer was a stream)."""
        if self.streamed:
            tail = self.translator.close()
            if tail:
                await self.inner.stream(200, self.translator.content_type, tail)

    def whole(self, status: int, content_type: str, data: bytes) -> None:
        instead = None if status == 200 else self.translator.failed(status, data)
        if status == 200 or instead is not None:
            answer = self.translator.whole(data) if instead is None else instead
            self.inner.whole(200, self.translator.whole_content_type, answer)
        else:
            self.inner.whole(status, "application/json", self.adapter.error_body(upstream_error(status, data)))


def upstream_error(status: int, data: bytes) -> LLMManagerError:
    """An error answer of the model server (OpenAI-shaped, or anything), as ours with the same status."""
    try:
        message = str(json.loads(data)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = data[:300].decode("utf-8", errors="replace") or f"the model server answered {status}"
    exc: LLMManagerError = BadRequest(message) if 400 <= status < 500 else UpstreamError(message)
    exc.status = status
    return exc
