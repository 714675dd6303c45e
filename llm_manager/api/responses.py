"""Stored Responses API answers: GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.

The id is an unguessable ``resp_`` + 32 hex digits; a key sees a stored answer when it may use its model (the /v1
key rules). Reads run off the IOLoop (the store is synchronous).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import NotFound
from ..service import Service
from .base import BaseHandler, caller_of

ID = r"(resp_[A-Za-z0-9_-]+)"


class StoredResponseHandler(BaseHandler):
    async def _load(self, rid: str) -> tuple[str, list[Any], dict[str, Any]]:
        store = self.accounting.store
        stored = await asyncio.get_running_loop().run_in_executor(None, store.load_response, rid) if store else None
        if stored is None:
            self.accounting.security.authorize(caller_of(self.request), None)  # 401 before 404
            raise NotFound(f"no stored response {rid!r}")
        self.accounting.security.authorize(caller_of(self.request), stored[0])
        return stored

    async def get(self, rid: str, items: str | None = None) -> None:
        _, before, response = await self._load(rid)
        if items:
            data = [{"id": x.get("id") or f"item_{i}", **x} for i, x in enumerate(before)]
            self.write_json({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": False})
        else:
            self.write_json(response)

    async def delete(self, rid: str, items: str | None = None) -> None:
        if items:
            raise NotFound(f"no route for DELETE {self.request.path}")
        await self._load(rid)
        await asyncio.get_running_loop().run_in_executor(None, self.accounting.store.delete_response, rid)
        self.write_json({"id": rid, "object": "response", "deleted": True})


def responses_routes(service: Service) -> list[tuple]:
    m = {"service": service}
    return [(rf"/v1/responses/{ID}(/input_items)?/?", StoredResponseHandler, m)]
