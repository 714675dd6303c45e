"""The fake backend's Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens), as llama-server serves it natively.

Lets tests relay this protocol to a server that speaks it (pass-through) without llama.cpp.
"""

from __future__ import annotations

from typing import Any


def routes(state: Any) -> list[Any]:
    """Tornado routes for this protocol (the fake backend's shared state passed in)."""
    return []
