"""The client protocols the gateway serves besides OpenAI's, in the order their paths are matched."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import Adapter
from .ollama import ModelControl, OllamaAdapter
from .responses import ResponsesAdapter, ResponseStore


def default_adapters(store: ResponseStore | None = None, responses_retention_days: float = 30.0,
                     manager: ModelControl | None = None) -> tuple[Adapter, ...]:
    """``store`` keeps Responses API answers (``previous_response_id``); None: nothing is stored. ``manager``:
    Ollama's ``keep_alive`` and model modes (None: neither)."""
    return (AnthropicAdapter(), ResponsesAdapter(store, responses_retention_days), OllamaAdapter(manager))
