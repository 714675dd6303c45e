"""OpenAI's Responses API (/v1/responses): requests translated to chat completions, or relayed to a server that speaks it."""

from __future__ import annotations

from .base import Adapter


class ResponsesAdapter(Adapter):
    name = "responses"
