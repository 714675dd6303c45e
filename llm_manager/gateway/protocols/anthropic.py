"""Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens): requests translated to chat completions, or relayed to a server that speaks it."""

from __future__ import annotations

from .base import Adapter


class AnthropicAdapter(Adapter):
    name = "anthropic"
