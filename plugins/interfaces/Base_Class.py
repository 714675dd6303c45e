"""Base class for interface plugins (one per model ``mode``), compatible with the original LLM-Manager.

An interface plugin says which OpenAI-style endpoints a mode serves and validates a request
path for it. The proxy forwards any endpoint a plugin lists, so a new mode is one new file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import httpx


def article(word: str) -> str:
    """'a' or 'an' before ``word`` (by its first letter: "an Embedding model", "a Chat model")."""
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


class InterfacePlugin(ABC):
    """Endpoints and request validation for one model mode (Chat, Base, Embedding, ...)."""

    def __init__(self, interface_name: str, model_manager: Any = None):
        self.interface_name = interface_name
        self.model_manager = model_manager

    @abstractmethod
    def get_supported_endpoints(self) -> set[str]:
        """Endpoint paths without the leading slash, e.g. ``{"v1/chat/completions"}``."""

    def get_endpoint_aliases(self) -> dict[str, str]:
        """Other paths clients post to for one of the endpoints (Cohere's ``v2/rerank``): path -> endpoint.

        The request is validated and forwarded upstream as the endpoint it names, and counted as it.
        """
        return {}

    def validate_request(self, path: str, model_alias: str) -> tuple[bool, str]:
        """(ok, message). The default accepts exactly the supported endpoints."""
        endpoint = path.strip("/")
        if endpoint in self.get_supported_endpoints():
            return True, ""
        usable = ", ".join("/" + e for e in sorted(self.get_supported_endpoints()))
        return False, f"model {model_alias} is {article(self.interface_name)} {self.interface_name} model; use {usable}"

    def validate_body(self, endpoint: str, body: dict[str, Any]) -> str | None:
        """An error message naming the bad field, or None. Called after JSON parsing."""
        return None

    def health_check(
        self, model_alias: str, port: int, start_time: float | None = None, timeout_seconds: int = 300
    ) -> tuple[bool, str]:
        """Seed-compatible blocking probe (the supervisor's own async health check is used at run time)."""
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=min(timeout_seconds, 5))
        except httpx.HTTPError as exc:
            return False, f"{model_alias}: {exc}"
        return r.status_code == 200, f"{model_alias}: HTTP {r.status_code}"
