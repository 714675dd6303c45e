"""The fake backend's OpenAI's Responses API (/v1/responses), as llama-server serves it natively.

Lets tests relay this protocol to a server that speaks it (pass-through) without llama.cpp. Like llama-server it
converts the request to a chat completion (so the same prompt gets the same words as /v1/chat/completions), keeps
no state (``previous_response_id`` is refused), streams events without ``sequence_number``/``output_index`` and
ends a stream without ``[DONE]``. A ``tool_choice`` naming a function (or "required") gets a function call.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import tornado.web

from . import fake_responses as fr


def _id() -> str:
    return uuid.uuid4().hex[:24]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise fr.RequestError("'content' must be a string or an array")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """llama-server's server_chat_convert_responses_to_chatcmpl, for the parts the fake acts on."""
    if "input" not in body:
        raise fr.RequestError("'input' is required")
    if body.get("previous_response_id"):
        raise fr.RequestError("llama.cpp does not support 'previous_response_id'.")
    messages: list[dict[str, Any]] = []
    if "instructions" in body:
        messages.append({"role": "system", "content": body["instructions"]})
    value = body["input"]
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, dict):
                raise fr.RequestError("Cannot determine type of 'item'")
            kind = item.get("type", "message")
            if kind == "message" or ("role" in item and "content" in item):
                messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
            elif kind == "function_call":
                messages.append({"role": "assistant", "content": ""})
            elif kind == "function_call_output":
                messages.append({"role": "tool", "content": _text(item.get("output"))})
            elif kind != "reasoning":
                raise fr.RequestError("Cannot determine type of 'item'")
    else:
        raise fr.RequestError("'input' must be a string or array of objects")
    chat: dict[str, Any] = {"messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


def _called(body: dict[str, Any]) -> str | None:
    """The function the request makes the model call, if any."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        return str(choice.get("name"))
    if choice == "required" and tools:
        return str(tools[0].get("name"))
    return None


def answer(model: str, body: dict[str, Any], default_tokens: int) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
    """The final response object and the stream's events (llama-server's order and fields)."""
    req = fr.parse_generation(to_chat(body), chat=True, default_tokens=default_tokens)
    rid, mid = "resp_" + _id(), "msg_" + _id()
    name = _called(body)
    tokens = [] if name else fr.generate_tokens(req.prompt, req.n_tokens)
    text = "".join(tokens)
    n_out = 1 if name else req.n_tokens
    usage = {"input_tokens": req.prompt_tokens, "output_tokens": n_out, "total_tokens": req.prompt_tokens + n_out,
             "input_tokens_details": {"cached_tokens": 0}}
    head = {"id": rid, "object": "response", "status": "in_progress"}
    events: list[tuple[str, dict]] = [("response.created", {"response": head}),
                                      ("response.in_progress", {"response": head})]
    output: list[dict[str, Any]] = []
    if name:
        cid = _id()
        call = {"id": "fc_" + cid, "type": "function_call", "status": "completed", "arguments": '{"x": 1}',
                "call_id": "call_" + cid, "name": name}
        events += [("response.output_item.added", {"item": {**call, "arguments": "", "status": "in_progress"}}),
                   ("response.function_call_arguments.delta", {"delta": call["arguments"], "item_id": call["id"]}),
                   ("response.output_item.done", {"item": call})]
        output.append(call)
    else:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        item = {"type": "message", "status": "completed", "id": mid, "content": [part], "role": "assistant"}
        events += [("response.output_item.added", {"item": {"content": [], "id": mid, "role": "assistant",
                                                             "status": "in_progress", "type": "message"}}),
                   ("response.content_part.added", {"item_id": mid, "part": {"type": "output_text", "text": ""}})]
        events += [("response.output_text.delta", {"item_id": mid, "delta": t}) for t in tokens]
        events += [("response.output_text.done", {"item_id": mid, "text": text}),
                   ("response.content_part.done", {"item_id": mid, "part": part}),
                   ("response.output_item.done", {"item": item})]
        output.append(item)
    t = int(time.time())
    final = {"completed_at": t, "created_at": t, "id": rid, "model": model, "object": "response", "output": output,
             "status": "completed", "usage": usage}
    events.append(("response.completed", {"response": {k: v for k, v in final.items() if k != "completed_at"}}))
    return final, events


def count(body: dict[str, Any]) -> dict[str, Any]:
    req = fr.parse_generation(to_chat(body), chat=True, default_tokens=0)
    return {"input_tokens": req.prompt_tokens, "object": "response.input_tokens"}


class _Handler(tornado.web.RequestHandler):
    """The fake backend's gate of a model endpoint (loading 503, JSON body, llama-server error shape), kept here:
    importing fake_backend would make an import circle."""

    def initialize(self, state: Any) -> None:
        self.state = state
        self.tokens: int | None = None

    def send(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload, separators=(",", ":")))

    async def post(self) -> None:
        self.state.inference_requests += 1
        if self.state.loading():
            return self.send(fr.error_body(503, "Loading model", "unavailable_error"), 503)
        try:
            body = json.loads(self.request.body or b"null")
            if not isinstance(body, dict):
                raise fr.RequestError("request body must be a JSON object")
            await self.handle(body)
        except ValueError as exc:
            self.send(fr.error_body(400, f"Invalid JSON body: {exc}", "invalid_request_error"), 400)
        except fr.RequestError as exc:
            self.send(fr.error_body(exc.code, exc.message, exc.type), exc.code)

    async def handle(self, body: dict[str, Any]) -> None:
        raise NotImplementedError


class ResponsesHandler(_Handler):
    async def handle(self, body: dict[str, Any]) -> None:
        final, events = answer(self.state.options.model, body, self.state.options.max_tokens_default)
        self.tokens = final["usage"]["output_tokens"]
        if not body.get("stream"):
            return self.send(final)
        self.set_header("Content-Type", "text/event-stream")
        for kind, data in events:
            self.write(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())
            await self.flush()


class InputTokensHandler(_Handler):
    async def handle(self, body: dict[str, Any]) -> None:
        self.send(count(body))


def routes(state: Any) -> list[Any]:
    """Tornado routes for this protocol (the fake backend's shared state passed in)."""
    s = {"state": state}
    return [(r"/(?:v1/)?responses", ResponsesHandler, s), (r"/(?:v1/)?responses/input_tokens", InputTokensHandler, s)]
