"""What a proxied request must be before it goes upstream: a served endpoint, and sane common fields.

Both checks are pure and cheap (the hot path runs them per request); the pipeline calls them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from ..errors import BadRequest

log = logging.getLogger(__name__)


def json_object(raw: bytes | None) -> dict[str, Any]:
    """A request body that must be one JSON object; 400 naming what is wrong otherwise."""
    try:
        body = json.loads(raw or b"")
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


class EndpointTable:
    """Every path the loaded interface plugins serve (their endpoints and aliases, such as ``v2/rerank``),
    mapped to the endpoint it is forwarded and counted as. Rebuilt when the plugins are reloaded."""

    def __init__(self) -> None:
        self._source: object = None
        self._table: dict[str, str] = {}

    def table(self, interfaces: Mapping[str, Any]) -> dict[str, str]:
        if interfaces is not self._source:  # reloading the plugins replaces the dict
            table: dict[str, str] = {}
            for iface in list(interfaces.values()):
                try:
                    table.update((e.strip("/"), e.strip("/")) for e in iface.get_supported_endpoints())
                    aliases = getattr(iface, "get_endpoint_aliases", dict)()
                    table.update((a.strip("/"), e.strip("/")) for a, e in aliases.items() if a.strip("/") not in table)
                except Exception:  # a broken plugin: its endpoints are not served, the others are
                    log.exception("interface plugin %r: listing its endpoints failed", iface)
            self._source, self._table = interfaces, table
        return self._table


# The common numeric fields of OpenAI requests: field -> (integer?, minimum, maximum); None is no bound.
# max_tokens -1 is llama-server's "no limit"; 0 is legacy completions with echo scoring a prompt.
NUMERIC_FIELDS: dict[str, tuple[bool, float | None, float | None]] = {
    "max_tokens": (True, -1, None), "max_completion_tokens": (True, 1, None), "n": (True, 1, None),
    "temperature": (False, 0, 2), "top_p": (False, 0, 1), "presence_penalty": (False, -2, 2),
    "frequency_penalty": (False, -2, 2), "seed": (True, None, None), "top_k": (True, -1, None),
    "top_logprobs": (True, 0, 20),
}


def shown(value: Any) -> str:
    return json.dumps(value, default=str)[:40]


def check_fields(body: dict[str, Any]) -> None:
    """400 naming the field (``param``) for a common field of the wrong type or out of range.

    Upstreams ignore some of these (a negative max_tokens) or refuse them in their own error shape.
    On the hot path: a dozen dict lookups; absent and null fields are skipped.
    """
    for name, (integer, low, high) in NUMERIC_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if (type(value) is bool or not isinstance(value, (int, float))
                or (isinstance(value, float) and (not math.isfinite(value) or (integer and not value.is_integer())))):
            raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}, got {shown(value)}",
                             param=name)
        if (low is not None and value < low) or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if low is not None and high is not None else (
                f">= {low:g}" if low is not None else f"<= {high:g}")
            if name == "max_tokens":
                bound = ">= 0 (or -1: no limit)"
            raise BadRequest(f"{name} must be {bound}, got {shown(value)}", param=name)
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        raise BadRequest(f"stream must be true or false, got {shown(stream)}", param="stream")
    logprobs = body.get("logprobs")
    if logprobs is not None and type(logprobs) is not bool and (type(logprobs) is not int or logprobs < 0):
        raise BadRequest("logprobs must be a boolean (chat) or an integer >= 0 (completions), "
                         f"got {shown(logprobs)}", param="logprobs")
