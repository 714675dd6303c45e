"""Stored Responses API answers (GET /v1/responses/{id})."""

from __future__ import annotations

from ..service import Service


def responses_routes(service: Service) -> list[tuple]:
    return []
