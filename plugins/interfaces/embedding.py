"""Embedding mode: /v1/embeddings."""

from __future__ import annotations

from typing import Any

from plugins.interfaces.Base_Class import InterfacePlugin


class EmbeddingInterface(InterfacePlugin):
    def __init__(self, model_manager: Any = None):
        super().__init__("Embedding", model_manager)

    def get_supported_endpoints(self) -> set[str]:
        return {"v1/embeddings"}

    def validate_body(self, endpoint: str, body: dict[str, Any]) -> str | None:
        value = body.get("input")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
            return "input: required, a string or a non-empty list"
        return None
