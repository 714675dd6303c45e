"""The Batches API's input: JSONL lines checked one by one, and the output/error file lines' shapes.

A bad line is an error-file line with its reason, never an exception: one typo must not sink 10,000 requests.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class Line:
    """A valid input line: what to send, and under which ``custom_id`` to report it."""

    idx: int
    custom_id: str
    url: str
    body: dict[str, Any]


@dataclass
class BadLine:
    idx: int
    custom_id: str | None
    code: str
    message: str


def parse_window(text: Any) -> float:
    """``completion_window`` in seconds: OpenAI's "24h", and (our extension) any "<number><s|m|h|d>"."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text) if isinstance(text, str) else None
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"completion_window must be a duration like \"24h\" (s, m, h or d), got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_lines(data: bytes, endpoint: str) -> tuple[list[Line], list[BadLine]]:
    """Every non-blank line of ``data`` as a ``Line`` or a ``BadLine``; a repeated custom_id is bad after its first."""
    good: list[Line] = []
    bad: list[BadLine] = []
    seen: set[str] = set()
    for idx, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append(BadLine(idx, None, "invalid_json", f"line {idx + 1}: not JSON ({exc})"))
            continue
        if not isinstance(obj, dict):
            bad.append(BadLine(idx, None, "invalid_json", f"line {idx + 1}: expected a JSON object"))
            continue
        cid = obj.get("custom_id")
        problem = _problem(obj, endpoint)
        if problem is None and cid in seen:
            problem = ("duplicate_custom_id", f"custom_id {cid!r} appears more than once")
        if problem is not None:
            bad.append(BadLine(idx, cid if isinstance(cid, str) else None, problem[0], f"line {idx + 1}: {problem[1]}"))
            continue
        seen.add(cid)
        good.append(Line(idx, cid, obj["url"], obj["body"]))
    return good, bad


def _problem(obj: dict[str, Any], endpoint: str) -> tuple[str, str] | None:
    for name in ("custom_id", "method", "url", "body"):
        if name not in obj:
            return "missing_required_parameter", f"missing required field: {name}"
    if not isinstance(obj["custom_id"], str) or not obj["custom_id"]:
        return "invalid_custom_id", "custom_id must be a non-empty string"
    if obj["method"] != "POST":
        return "invalid_method", f"method must be POST, got {obj['method']!r}"
    if obj["url"] != endpoint:
        return "mismatched_url", f"url {obj['url']!r} does not match the batch's endpoint {endpoint}"
    if not isinstance(obj["body"], dict):
        return "invalid_body", "body must be a JSON object"
    if obj["body"].get("stream") is True:
        return "invalid_body", "stream is not supported in a batch"
    return None


def output_line(custom_id: str | None, status: int, body: Any) -> dict[str, Any]:
    """One line of OpenAI's batch output shape for an answered request (any status)."""
    return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": "req_" + secrets.token_hex(12), "body": body},
            "error": None}


def error_line(custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    """One error-file line for a request that got no answer (a bad line, or one expired or cancelled)."""
    return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": custom_id, "response": None,
            "error": {"code": code, "message": message}}
