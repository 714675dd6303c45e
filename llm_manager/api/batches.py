"""OpenAI's Files and Batches API: /v1/files (multipart upload, list, get, content, delete) and /v1/batches.

Not proxied model calls: handlers, routed ahead of the /v1 catch-all (``route_v1`` leaves their POSTs to them).
They follow /v1's key rules: a key sees its own files and batches, the admin key (or an open server) sees all.
The store is synchronous, so every read and write runs off the IOLoop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..accounting.batch_store import BatchStore
from ..accounting.security import KeyInfo
from ..errors import BadRequest, NotFound
from ..gateway.batch import BatchRunner, owns
from ..service import Service
from .base import BaseHandler, caller_of

FILE = r"(file-[A-Za-z0-9_-]+)"
BATCH = r"(batch_[A-Za-z0-9_-]+)"


class BatchApiHandler(BaseHandler):
    def key(self) -> KeyInfo | None:
        return self.accounting.security.authorize(caller_of(self.request), None)

    @property
    def runner(self) -> BatchRunner:
        if self.service.batches is None:
            raise NotFound("the Batches API is not enabled in this manager")
        return self.service.batches

    @property
    def store(self) -> BatchStore:
        if self.runner.store is None:
            raise NotFound("the Files and Batches API needs the usage store (this manager runs without one)")
        return self.runner.store

    async def own_file(self, file_id: str) -> tuple[KeyInfo | None, dict[str, Any]]:
        key = self.key()
        row = await asyncio.to_thread(self.store.file_row, file_id)
        if row is None or not owns(key, row.key_id):
            raise NotFound(f"no file {file_id!r}")
        return key, await asyncio.to_thread(self.store.file, file_id) or {}


class FilesHandler(BatchApiHandler):
    async def post(self) -> None:
        key = self.key()
        purpose = self.get_body_argument("purpose", None)
        uploads = self.request.files.get("file")
        if purpose != "batch":
            raise BadRequest(f"purpose must be 'batch' (the only purpose this server keeps files for), got {purpose!r}",
                             param="purpose")
        if not uploads:
            raise BadRequest("send the file as multipart/form-data field 'file'", param="file")
        up = uploads[0]
        saved = await asyncio.to_thread(self.store.save_file, up.body, up.filename or "upload.jsonl", purpose,
                                        key.id if key else None)
        self.write_json(saved)

    async def get(self) -> None:
        key = self.key()
        files = await asyncio.to_thread(self.store.files, key.id if key else None, owns(key, None),
                                        self.get_argument("purpose", None))
        self.write_json({"object": "list", "data": files, "has_more": False})


class FileHandler(BatchApiHandler):
    async def get(self, file_id: str, content: str | None = None) -> None:
        _, info = await self.own_file(file_id)
        if not content:
            self.write_json(info)
            return
        data = await asyncio.to_thread(self.store.file_bytes, file_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)

    async def delete(self, file_id: str, content: str | None = None) -> None:
        if content:
            raise NotFound(f"no route for DELETE {self.request.path}")
        await self.own_file(file_id)
        await asyncio.to_thread(self.store.delete_file, file_id)
        self.write_json({"id": file_id, "object": "file", "deleted": True})


class BatchesHandler(BatchApiHandler):
    async def post(self) -> None:
        key = self.key()
        self.write_json(await self.runner.create(key, self.json_body()))

    async def get(self) -> None:
        key = self.key()
        try:
            limit = max(1, min(int(self.get_argument("limit", "20")), 100))
        except ValueError:
            raise BadRequest("limit: expected an integer", param="limit") from None
        page = await asyncio.to_thread(self.store.batches, key.id if key else None, owns(key, None),
                                       self.get_argument("after", None), limit + 1)
        data = page[:limit]
        self.write_json({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": len(page) > limit})


class BatchHandler(BatchApiHandler):
    async def _own(self, batch_id: str) -> None:
        key = self.key()
        row = await asyncio.to_thread(self.store.batch_row, batch_id)
        if row is None or not owns(key, row.key_id):
            raise NotFound(f"no batch {batch_id!r}")

    async def get(self, batch_id: str, cancel: str | None = None) -> None:
        if cancel:
            raise NotFound(f"no route for GET {self.request.path}")
        await self._own(batch_id)
        self.write_json(await asyncio.to_thread(self.store.batch, batch_id))

    async def post(self, batch_id: str, cancel: str | None = None) -> None:
        if not cancel:
            raise NotFound(f"no route for POST {self.request.path}")
        await self._own(batch_id)
        self.write_json(await self.runner.cancel(batch_id))


def batch_routes(service: Service) -> list[tuple]:
    """Ahead of the /v1 catch-all."""
    m = {"service": service}
    return [
        (r"/v1/files/?", FilesHandler, m),
        (rf"/v1/files/{FILE}(?:/(content))?/?", FileHandler, m),
        (r"/v1/batches/?", BatchesHandler, m),
        (rf"/v1/batches/{BATCH}(?:/(cancel))?/?", BatchHandler, m),
    ]
