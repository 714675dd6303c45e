"""Ollama's API (/api/chat, /api/generate, /api/embed, /api/embeddings): requests translated to OpenAI's.

No model server here speaks Ollama's API, so every request becomes a chat completion, a completion or an embeddings
request; the answer's translation is in ``ollama_answer``. Ollama's ``keep_alive`` (how long the model stays loaded
after the request) goes to the Manager once the answer is complete; ``name:latest`` finds the plain name.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from ...config.parse import ModelConfig
from ...errors import BadRequest, LLMManagerError
from .base import Adapter, AnswerTranslator
from .ollama_answer import EmbedTranslator, OllamaTranslator, created_at

# Ollama's sampling options that OpenAI's (or llama-server's) request has a field for; load-time options are ignored
OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
           "stop": "stop", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
           "repeat_penalty": "repeat_penalty", "typical_p": "typical_p", "num_predict": "max_tokens"}
DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAGIC = {"/9j/": "image/jpeg", "iVBOR": "image/png", "R0lGOD": "image/gif", "UklGR": "image/webp"}


class ModelControl(Protocol):
    """What the adapter needs of the Manager: names, the models' interfaces, keep_alive."""

    interfaces: dict[str, Any]

    def resolve(self, name: str) -> ModelConfig: ...

    def keep_alive(self, name: str, seconds: float | None) -> None: ...


def untagged(name: str, resolve: Any = None) -> str:
    """``name:latest`` as the plain name when only that exists (Ollama clients add the tag)."""
    plain = name.removesuffix(":latest")
    if plain == name or resolve is None:
        return plain
    for candidate in (name, plain):  # a configured name with its tag first; else the error names what was asked
        try:
            resolve(candidate)
            return candidate
        except LLMManagerError:
            pass
    return name


def tagged(name: str) -> str:
    """A model name as Ollama lists it: with a tag."""
    return name if ":" in name else name + ":latest"


def keep_alive_seconds(value: Any) -> float | None:
    """Ollama's ``keep_alive``: seconds (a number), a Go duration ("5m", "1h30m"), negative = forever; None: unset."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value >= 0 else -1.0
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise BadRequest(f'keep_alive: expected seconds or a duration such as "5m", got {value!r}',
                                 param="keep_alive") from None
            seconds = sum(float(n) * UNITS[u] for n, u in parts)
        return seconds if seconds >= 0 else -1.0
    raise BadRequest(f"keep_alive: expected a number or a duration string, got {type(value).__name__}",
                     param="keep_alive")


def sampling(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama's ``options`` and ``format`` as OpenAI request fields."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options: expected an object", param="options")
    out = {OPTIONS[k]: v for k, v in options.items() if k in OPTIONS and v is not None}
    if isinstance(out.get("max_tokens"), int) and out["max_tokens"] < 0:  # -1: no limit, -2: fill the context
        del out["max_tokens"]
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    elif fmt not in (None, ""):
        raise BadRequest('format: expected "json" or a JSON schema', param="format")
    return out


def image_part(data: Any, where: str) -> dict[str, Any]:
    """A base64 image (Ollama's ``images``) as an OpenAI ``image_url`` part with a data URL."""
    if not isinstance(data, str) or not data:
        raise BadRequest(f"{where}: expected a base64 string", param=where)
    if data.startswith("data:"):
        return {"type": "image_url", "image_url": {"url": data}}
    mime = next((m for prefix, m in MAGIC.items() if data.startswith(prefix)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def user_content(text: Any, images: Any, where: str) -> Any:
    """Text alone stays a string; with images it becomes OpenAI content parts."""
    if not images:
        return text if isinstance(text, str) else ""
    if not isinstance(images, list):
        raise BadRequest(f"{where}.images: expected a list of base64 strings", param=where)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if isinstance(text, str) and text else []
    return parts + [image_part(img, f"{where}.images[{i}]") for i, img in enumerate(images)]


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """Ollama's messages as OpenAI's: images as parts, tool calls with ids and JSON-string arguments, tool results
    linked to the call they answer (by ``tool_name``, else in order)."""
    if not isinstance(messages, list):
        raise BadRequest("messages: expected a list", param="messages")
    out: list[dict[str, Any]] = []
    open_calls: list[tuple[str, str]] = []  # (id, name) of the last assistant turn's calls not yet answered
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise BadRequest(f"{where}: expected an object with a role", param=where)
        role, content = msg["role"], msg.get("content")
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for j, call in enumerate(msg["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise BadRequest(f"{where}.tool_calls[{j}]: expected a function with a name", param=where)
                args = fn.get("arguments", {})
                calls.append({"id": f"call_{i}_{j}", "type": "function",
                              "function": {"name": fn["name"],
                                           "arguments": args if isinstance(args, str) else json.dumps(args)}})
            open_calls = [(c["id"], c["function"]["name"]) for c in calls]
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        elif role == "tool":
            name = msg.get("tool_name")
            match = next((c for c in open_calls if c[1] == name), open_calls[0] if open_calls else None)
            if match is None:
                raise BadRequest(f"{where}: a tool result without an assistant tool call before it", param=where)
            open_calls.remove(match)
            out.append({"role": "tool", "tool_call_id": match[0], "content": content if isinstance(content, str)
                        else json.dumps(content)})
        elif role == "user":
            out.append({"role": "user", "content": user_content(content, msg.get("images"), where)})
        else:
            out.append({"role": role, "content": content if isinstance(content, str) else ""})
    return out


def chat_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An /api/chat body as a chat-completions body (``stream`` defaults to true, as in Ollama)."""
    out: dict[str, Any] = {"model": model, "messages": chat_messages(body.get("messages") or []), **sampling(body)}
    if isinstance(body.get("think"), bool):  # thinking models' switch (llama-server, vLLM: the chat template's)
        out["chat_template_kwargs"] = {"enable_thinking": body["think"]}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise BadRequest("tools: expected a list", param="tools")
        out["tools"] = tools  # Ollama's tools are OpenAI's function tools already
    return _streaming(out, body)


def generate_request(body: dict[str, Any], model: str, chat: bool) -> tuple[str, dict[str, Any]]:
    """An /api/generate body: a chat completion for a chat model (its template applies), else (or ``raw``) a
    completion of the prompt as it is. ``suffix``, ``template`` and ``context`` are not supported and ignored."""
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadRequest("prompt: expected a string", param="prompt")
    system = body.get("system")
    if chat and not body.get("raw"):
        messages = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
        messages.append({"role": "user", "content": user_content(prompt, body.get("images"), "body")})
        return "v1/chat/completions", _streaming({"model": model, "messages": messages, **sampling(body)}, body)
    if body.get("images"):
        raise BadRequest("images: only a chat model (without raw) takes images on /api/generate", param="images")
    if isinstance(system, str) and system and not body.get("raw"):
        prompt = f"{system}\n\n{prompt}"
    out = {"model": model, "prompt": prompt, **sampling(body)}
    fmt = out.pop("response_format", None)
    if fmt is not None:  # completions take llama-server's json_schema, not response_format
        out["json_schema"] = fmt.get("json_schema", {}).get("schema", {"type": "object"})
    return "v1/completions", _streaming(out, body)


def _streaming(out: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    out["stream"] = body.get("stream", True) is not False
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}  # the last line's counts
    return out


def embed_request(op: str, body: dict[str, Any], model: str) -> dict[str, Any]:
    """/api/embed (``input``: a string or strings) or /api/embeddings (``prompt``) as an embeddings body."""
    if op == "embeddings":
        text = body.get("prompt")
        if not isinstance(text, str):
            raise BadRequest("prompt: expected a string", param="prompt")
        return {"model": model, "input": text}
    inputs = body.get("input")
    if not (isinstance(inputs, str) or (isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs))):
        raise BadRequest("input: expected a string or a non-empty list of strings", param="input")
    out: dict[str, Any] = {"model": model, "input": inputs}
    if isinstance(body.get("dimensions"), int):
        out["dimensions"] = body["dimensions"]
    return out


def empty(op: str, body: dict[str, Any]) -> bool:
    """A request with nothing to generate: Ollama's way to load (or, with keep_alive 0, unload) a model."""
    return (op == "generate" and not body.get("prompt") and not body.get("images")) or \
        (op == "chat" and not body.get("messages"))


class OllamaAdapter(Adapter):
    name = "ollama"
    paths = {"api/chat": "chat", "api/generate": "generate", "api/embed": "embed", "api/embeddings": "embeddings"}
    labels = {"chat": "api/chat", "generate": "api/generate", "embed": "api/embed", "embeddings": "api/embeddings"}

    def __init__(self, control: ModelControl | None = None):
        self.control = control  # None (unit tests): no keep_alive, every model taken as a chat model

    def model_of(self, op: str, body: dict[str, Any]) -> Any:
        name = body.get("model", body.get("name"))
        return untagged(name, self.control.resolve if self.control else None) if isinstance(name, str) else name

    def names(self, name: str) -> tuple[str, ...]:
        plain = name.removesuffix(":latest")
        return (name,) if plain == name else (name, plain)

    def streams(self, op: str, body: dict[str, Any]) -> bool:
        return op in ("chat", "generate") and body.get("stream", True) is not False  # Ollama streams by default

    def _chat(self, model: str) -> bool:
        """Whether /api/generate should go through the chat template (the model serves chat completions)."""
        if self.control is None:
            return True
        iface = self.control.interfaces.get(self.control.resolve(model).mode)
        return iface is not None and "v1/chat/completions" in iface.get_supported_endpoints()

    def to_openai(self, op: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        keep_alive_seconds(body.get("keep_alive"))  # a bad one is refused before any work
        if op in ("embed", "embeddings"):
            return "v1/embeddings", embed_request(op, body, model)
        if empty(op, body):  # load the model: the shortest generation there is
            body = {**body, "prompt": " ", "messages": [{"role": "user", "content": " "}], "stream": False,
                    "options": {"num_predict": 1}, "format": None}
        if op == "chat":
            return "v1/chat/completions", chat_request(body, model)
        return generate_request(body, model, self._chat(model))

    def _keeper(self, body: dict[str, Any], model: str) -> Any:
        if self.control is None:
            return None
        control, seconds = self.control, keep_alive_seconds(body.get("keep_alive"))
        return lambda: control.keep_alive(model, seconds)

    def translator(self, op: str, body: dict[str, Any], model: str) -> AnswerTranslator:
        asked = str(body.get("model", body.get("name", model)))
        if op in ("embed", "embeddings"):
            return EmbedTranslator(asked, op == "embeddings", self._keeper(body, model))
        return OllamaTranslator(op, asked, self._keeper(body, model), load=empty(op, body))

    def local(self, op: str, body: dict[str, Any], model: str) -> bytes | None:
        """An empty chat or generate request with ``keep_alive: 0`` unloads the model without asking it."""
        if op not in ("chat", "generate") or not empty(op, body) or keep_alive_seconds(body.get("keep_alive")) != 0:
            return None
        if self.control is not None:
            self.control.keep_alive(model, 0)
        answer: dict[str, Any] = {"model": body.get("model"), "created_at": created_at(), "done": True,
                                  "done_reason": "unload"}
        answer.update({"message": {"role": "assistant", "content": ""}} if op == "chat" else {"response": ""})
        return json.dumps(answer).encode()

    def error_body(self, exc: LLMManagerError) -> bytes:
        return json.dumps({"error": exc.message}).encode()

    def stream_error(self, exc: LLMManagerError) -> bytes:
        return self.error_body(exc) + b"\n"
