"""llm-manager: a local LLM model manager and OpenAI-compatible gateway."""

from __future__ import annotations

__version__ = "0.1.0"

