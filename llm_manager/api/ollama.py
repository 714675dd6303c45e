"""Ollama's read-only endpoints (/api/tags, /api/ps, /api/version, /api/show): the manager's models in Ollama's shapes."""

from __future__ import annotations

from ..service import Service


def ollama_routes(service: Service) -> list[tuple]:
    return []
