"""Base mode: raw text completion for models without a chat template."""

from __future__ import annotations

from typing import Any

from plugins.interfaces.Base_Class import InterfacePlugin


class BaseInterface(InterfacePlugin):
    def __init__(self, model_manager: Any = None):
        super().__init__("Base", model_manager)

    def get_supported_endpoints(self) -> set[str]:
        return {"v1/completions"}

    def validate_body(self, endpoint: str, body: dict[str, Any]) -> str | None:
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            return "prompt: required, a string or a list"
        return None
