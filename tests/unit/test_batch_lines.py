"""Batch input validation: every bad line becomes an error with its reason, never an exception."""

from __future__ import annotations

import json

import pytest

from llm_manager.gateway.batch_lines import error_line, output_line, parse_lines, parse_window

EP = "/v1/chat/completions"


def line(cid: object = "a", **over: object) -> bytes:
    obj = {"custom_id": cid, "method": "POST", "url": EP, "body": {"model": "chat", "messages": []}}
    obj.update(over)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def test_good_lines_keep_their_order_and_blank_lines_are_skipped():
    good, bad = parse_lines(b"\n".join([line("a"), b"", b"  ", line("b")]) + b"\n", EP)
    assert [(g.idx, g.custom_id, g.url) for g in good] == [(0, "a", EP), (3, "b", EP)] and bad == []
    assert good[0].body == {"model": "chat", "messages": []}


@pytest.mark.parametrize(("raw", "code", "words"), [
    (b"{not json", "invalid_json", "not JSON"),
    (b"[1, 2]", "invalid_json", "JSON object"),
    (b"\xff\xfe", "invalid_json", "not JSON"),
    (line(custom_id=...), "missing_required_parameter", "custom_id"),
    (line(method=...), "missing_required_parameter", "method"),
    (line(url=...), "missing_required_parameter", "url"),
    (line(body=...), "missing_required_parameter", "body"),
    (line(""), "invalid_custom_id", "custom_id"),
    (line(7), "invalid_custom_id", "custom_id"),
    (line(method="GET"), "invalid_method", "POST"),
    (line(url="/v1/embeddings"), "mismatched_url", "/v1/embeddings"),
    (line(body=[1]), "invalid_body", "object"),
    (line(body={"model": "chat", "stream": True}), "invalid_body", "stream"),
])
def test_each_kind_of_bad_line_has_its_reason(raw: bytes, code: str, words: str):
    good, bad = parse_lines(line("ok") + b"\n" + raw, EP)
    assert [g.custom_id for g in good] == ["ok"]
    assert len(bad) == 1 and bad[0].code == code and words in bad[0].message and bad[0].idx == 1
    assert bad[0].message.startswith("line 2:")


def test_a_repeated_custom_id_is_bad_after_its_first_use():
    good, bad = parse_lines(b"\n".join([line("a"), line("b"), line("a"), line("a")]), EP)
    assert [g.custom_id for g in good] == ["a", "b"]
    assert [(b.idx, b.custom_id, b.code) for b in bad] == [(2, "a", "duplicate_custom_id"), (3, "a", "duplicate_custom_id")]


def test_a_bad_line_does_not_reserve_its_custom_id():
    good, bad = parse_lines(b"\n".join([line("a", method="GET"), line("a")]), EP)
    assert [g.custom_id for g in good] == ["a"] and bad[0].code == "invalid_method"


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400.0), ("1s", 1.0), ("2.5m", 150.0), ("7d", 604800.0)])
def test_completion_windows(text: str, seconds: float):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "0s", "-1h", "1w", 24, None])
def test_bad_completion_windows(text: object):
    with pytest.raises(ValueError, match="completion_window"):
        parse_window(text)


def test_output_and_error_lines_have_openais_shape():
    out = output_line("x", 200, {"ok": 1})
    assert out["id"].startswith("batch_req_") and out["custom_id"] == "x" and out["error"] is None
    assert out["response"]["status_code"] == 200 and out["response"]["body"] == {"ok": 1}
    assert out["response"]["request_id"].startswith("req_")
    err = error_line(None, "batch_expired", "too late")
    assert err["response"] is None and err["error"] == {"code": "batch_expired", "message": "too late"}


def test_batch_share_and_discount_are_read_from_program_and_models():
    from llm_manager.config.parse import parse_config
    from llm_manager.errors import ConfigError

    def config(program: dict[str, object], model: dict[str, object]) -> object:
        return parse_config({"program": program, "m": {"mode": "Chat", "port": 9, "command": ["x"], **model}})

    c = config({"batch_share": 0.25, "batch_discount": 0.5}, {"batch_share": 1, "batch_discount": 0})
    assert (c.program.batch_share, c.program.batch_discount) == (0.25, 0.5)
    assert (c.models["m"].batch_share, c.models["m"].batch_discount) == (1.0, 0.0)
    d = config({}, {})
    assert (d.program.batch_share, d.program.batch_discount, d.models["m"].batch_share) == (0.5, 0.0, None)
    for program, model, where in [({"batch_share": 0}, {}, "program.batch_share"),
                                  ({}, {"batch_discount": 1.5}, "m.batch_discount"),
                                  ({}, {"batch_share": True}, "m.batch_share")]:
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            config(program, model)
