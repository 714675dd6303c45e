"""The config document as it may be shown (/api/config, the dashboard): every secret replaced by ``***``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

SECRET_PROGRAM_KEYS = ("api_keys", "admin_key", "metrics_key", "database_url", "cluster_secret")


def redact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config document with secrets (program keys, upstreams' API keys) replaced by ``***``, as /api/config and
    the dashboard show it."""
    doc = copy.deepcopy(dict(raw))
    program = doc.get("program")
    if isinstance(program, dict):
        for key in SECRET_PROGRAM_KEYS:
            if key in program:
                program[key] = "***"
        alerts = program.get("alerts")
        hooks = alerts.get("webhooks") if isinstance(alerts, dict) else None
        for hook in hooks if isinstance(hooks, list) else ():
            if isinstance(hook, dict) and "secret" in hook:
                hook["secret"] = "***"
    for name, block in doc.items():
        upstreams = block.get("upstreams") if name != "program" and isinstance(block, dict) else None
        for up in upstreams if isinstance(upstreams, list) else ():
            if isinstance(up, dict) and "api_key" in up:
                up["api_key"] = "***"
    return doc
