"""The request pipeline without HTTP: a Call in, a Reply that keeps the answer in memory (as a batch runner will).

The model servers are real fake-backend processes; nothing here goes through Tornado.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import MemoryReply, config_doc, fake_model

from llm_manager.accounting.security import Caller
from llm_manager.config.parse import parse_config
from llm_manager.errors import AuthenticationError, BadRequest, NotFound, PermissionDenied
from llm_manager.gateway.pipeline import Call
from llm_manager.service import Service, build


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    doc = config_doc({"chat": fake_model("Chat", aliases=["c"], pricing={"input": 1.0, "output": 2.0, "per": 1000}),
                      "embed": fake_model("Embedding")},
                     api_keys=[{"key": "sk-chat-only", "name": "chatty", "models": ["chat"]}])
    svc = build(parse_config(doc, tmp_path), tmp_path / "data", with_store=False)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown()


def call(path: str, body: dict, token: str | None = "sk-chat-only") -> Call:
    return Call(path, json.dumps(body).encode(), Caller(token, "127.0.0.1"))


CHAT = {"model": "c", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}


async def test_a_whole_answer_is_served_and_accounted(service: Service) -> None:
    reply = MemoryReply()
    rec = await service.pipeline.handle(call("v1/chat/completions", CHAT), reply)
    assert reply.status == 200 and reply.whole_body is not None
    answer = json.loads(reply.whole_body)
    assert answer["choices"][0]["message"]["content"]
    assert (rec.model, rec.alias, rec.endpoint, rec.key_id) == ("chat", "c", "chat/completions", "cfg:chatty")
    assert rec.prompt_tokens == answer["usage"]["prompt_tokens"] and rec.completion_tokens == 5
    assert rec.cost == pytest.approx((rec.prompt_tokens * 1.0 + 5 * 2.0) / 1000)
    assert service.manager.usage.recent[-1] is rec  # recorded through the manager's sinks


async def test_a_stream_arrives_event_by_event_with_usage_counted_but_not_shown(service: Service) -> None:
    reply = MemoryReply()
    rec = await service.pipeline.handle(call("v1/chat/completions", {**CHAT, "stream": True}), reply)
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream")
    events = b"".join(reply.pieces).decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]" and len(events) >= 3
    assert not any('"usage"' in e for e in events)  # the client did not ask for include_usage
    assert rec.completion_tokens == 5 and rec.ttft_ms is not None and not rec.estimated


async def test_checks_come_before_any_model_is_touched(service: Service) -> None:
    cases = [
        (call("v1/nope", CHAT), NotFound, None),
        (call("v1/chat/completions", {"messages": []}), BadRequest, "model"),
        (call("v1/chat/completions", {**CHAT, "temperature": 9}), BadRequest, "temperature"),
        (call("v1/chat/completions", CHAT, token=None), AuthenticationError, None),
        (call("v1/embeddings", {"model": "embed", "input": "x"}), PermissionDenied, None),
        (call("v1/embeddings", {"model": "chat", "input": "x"}), BadRequest, "model"),
    ]
    for c, error, param in cases:
        with pytest.raises(error) as exc:
            await service.pipeline.handle(c, MemoryReply())
        assert exc.value.param == param, (c.path, exc.value.message)
    assert {i["name"]: i["state"] for i in service.manager.models_info()} == {"chat": "stopped", "embed": "stopped"}
