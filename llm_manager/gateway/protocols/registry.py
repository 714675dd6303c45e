"""The client protocols the gateway serves besides OpenAI's, in the order their paths are matched."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import Adapter
from .ollama import OllamaAdapter
from .responses import ResponsesAdapter


def default_adapters() -> tuple[Adapter, ...]:
    return (AnthropicAdapter(), ResponsesAdapter(), OllamaAdapter())
