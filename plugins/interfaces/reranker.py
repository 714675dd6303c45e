"""Reranker mode: /v1/rerank (Jina/Cohere shape, as llama.cpp and TEI serve it), also at /rerank and at
/v2/rerank, Cohere's v2 path, which litellm's cohere provider posts to by default."""

from __future__ import annotations

from typing import Any

from plugins.interfaces.Base_Class import InterfacePlugin


class RerankerInterface(InterfacePlugin):
    def __init__(self, model_manager: Any = None):
        super().__init__("Reranker", model_manager)

    def get_supported_endpoints(self) -> set[str]:
        return {"v1/rerank"}

    def get_endpoint_aliases(self) -> dict[str, str]:
        return {"rerank": "v1/rerank", "v2/rerank": "v1/rerank"}

    def validate_body(self, endpoint: str, body: dict[str, Any]) -> str | None:
        if not isinstance(body.get("query"), str):
            return "query: required, a string"
        docs = body.get("documents")
        if not isinstance(docs, list) or not docs:
            return "documents: required, a non-empty list"
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
            return "top_n: expected a positive integer"
        return None
