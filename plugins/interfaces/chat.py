"""Chat mode: chat completions (and plain completions, which every chat server also serves)."""

from __future__ import annotations

from typing import Any

from plugins.interfaces.Base_Class import InterfacePlugin


class ChatInterface(InterfacePlugin):
    def __init__(self, model_manager: Any = None):
        super().__init__("Chat", model_manager)

    def get_supported_endpoints(self) -> set[str]:
        return {"v1/chat/completions", "v1/completions"}

    def validate_body(self, endpoint: str, body: dict[str, Any]) -> str | None:
        if endpoint == "v1/chat/completions":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return "messages: expected a non-empty list of {role, content}"
            for i, m in enumerate(messages):
                if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                    return f"messages[{i}]: expected an object with a string role"
            return None
        if "prompt" not in body:
            return "prompt: required"
        return None
