"""Ollama's API (/api/chat, /api/generate, /api/embed, /api/embeddings): requests translated to chat completions, or relayed to a server that speaks it."""

from __future__ import annotations

from .base import Adapter


class OllamaAdapter(Adapter):
    name = "ollama"
