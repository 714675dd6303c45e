"""The Batches API's runner: each batch's lines through ``Pipeline.handle`` at low priority, durably.

A line counts as done once its result row is committed (after its usage row is flushed), so a restart — SIGTERM
or kill -9 — resumes a batch with exactly the lines not yet committed. Lines run as the key that created the
batch: only its hash is stored, so the runner cannot present the token again; its id, proven when the batch was
created, stands in for it (``Caller.key_id``: the key's model list and revocation still apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from ..accounting.batch_store import BatchStore
from ..accounting.schema import Batch, BatchLine
from ..accounting.security import Caller, KeyInfo
from ..errors import BadRequest, LLMManagerError, NotFound
from .batch_lines import ENDPOINTS, error_line, output_line, parse_lines, parse_window
from .pipeline import Call, Pipeline

log = logging.getLogger(__name__)


class MemoryReply:
    """A Reply that keeps the (whole) answer: batch lines never stream."""

    def __init__(self) -> None:
        self.status = 0
        self.data = b""

    @property
    def started(self) -> bool:
        return bool(self.status)

    async def stream(self, status: int, content_type: str, data: bytes) -> None:
        self.status = status
        self.data += data

    def whole(self, status: int, content_type: str, data: bytes) -> None:
        self.status, self.data = status, data

    def header(self, name: str, value: str) -> None:  # an output line has no headers
        pass


class BatchRunner:
    """Starts, resumes, cancels and finishes batches; ``parallel`` lines of a batch are in the pipeline at once
    (the models' Gates decide how many of them run)."""

    def __init__(self, pipeline: Pipeline, store: BatchStore | None, parallel: int = 16):
        self.pipeline, self.store, self.parallel = pipeline, store, parallel
        self.tasks: dict[str, asyncio.Task] = {}

    def _need_store(self) -> BatchStore:
        if self.store is None:
            raise NotFound("the Batches API needs the usage store (this manager runs without one)")
        return self.store

    async def start(self) -> None:
        """Resume every batch a previous run left unfinished."""
        if self.store is not None:
            for batch_id in await asyncio.to_thread(self.store.unfinished):
                self._launch(batch_id)

    async def stop(self) -> None:
        """Stop at once: lines in flight are cancelled, uncommitted, and run again after a restart."""
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _launch(self, batch_id: str) -> None:
        task = asyncio.create_task(self._run(batch_id), name=f"batch {batch_id}")
        self.tasks[batch_id] = task
        task.add_done_callback(lambda t: self._done(batch_id, t))

    def _done(self, batch_id: str, task: asyncio.Task) -> None:
        if self.tasks.get(batch_id) is task:
            del self.tasks[batch_id]
        if not task.cancelled() and task.exception() is not None:  # e.g. the database went away: resumed on restart
            log.error("batch %s stopped: %r", batch_id, task.exception())

    async def create(self, key: KeyInfo | None, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, store the batch with all its lines (bad ones already in the error file's shape), start it."""
        store = self._need_store()
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise BadRequest(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}", param="endpoint")
        window = body.get("completion_window", "24h")
        try:
            seconds = parse_window(window)
        except ValueError as exc:
            raise BadRequest(str(exc), param="completion_window") from None
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object", param="metadata")
        file_id = body.get("input_file_id")
        row = await asyncio.to_thread(store.file_row, file_id) if isinstance(file_id, str) else None
        if row is None or not owns(key, row.key_id):
            raise NotFound(f"no file {file_id!r}", param="input_file_id")
        if row.purpose != "batch":
            raise BadRequest(f"file {file_id} has purpose {row.purpose!r}, not 'batch'", param="input_file_id")
        data = await asyncio.to_thread(store.file_bytes, file_id)
        good, bad = await asyncio.to_thread(parse_lines, data, endpoint)
        if not good and not bad:
            raise BadRequest(f"file {file_id} holds no request lines", param="input_file_id")
        now = time.time()
        batch = Batch(id="batch_" + secrets.token_hex(12), created_at=now, key_id=key.id if key else None,
                      endpoint=endpoint, input_file_id=file_id, completion_window=window, expires_at=now + seconds,
                      status="in_progress", metadata_json=json.dumps(metadata),
                      times_json=json.dumps({"in_progress_at": int(now)}), total=len(good) + len(bad))
        lines = [BatchLine(batch_id=batch.id, idx=g.idx, custom_id=g.custom_id, url=g.url, request=json.dumps(g.body))
                 for g in good]
        lines += [BatchLine(batch_id=batch.id, idx=b.idx, custom_id=b.custom_id or "", state="done", ok=False,
                            result=json.dumps(error_line(b.custom_id, b.code, b.message))) for b in bad]
        await asyncio.to_thread(store.create_batch, batch, lines)
        self._launch(batch.id)
        return await asyncio.to_thread(store.batch, batch.id) or {}

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        """``cancelling`` (committed) at once; lines in flight are cancelled, then ``cancelled`` with its files."""
        store = self._need_store()
        row = await asyncio.to_thread(store.batch_row, batch_id)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        if row.status in ("validating", "in_progress", "finalizing"):
            await asyncio.to_thread(store.set_status, batch_id, "cancelling")
            task = self.tasks.get(batch_id)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._launch(batch_id)  # it sees "cancelling" and closes the batch
        return await asyncio.to_thread(store.batch, batch_id) or {}

    async def _run(self, batch_id: str) -> None:
        store = self._need_store()
        row = await asyncio.to_thread(store.batch_row, batch_id)
        if row is None:
            return
        if row.status == "cancelling":
            await self._close(row, "cancelled", "batch_cancelled", "the batch was cancelled before this line ran")
            return
        lines = await asyncio.to_thread(store.pending, batch_id)
        gate = asyncio.Semaphore(self.parallel)
        tasks = [asyncio.create_task(self._line(row.key_id, batch_id, line, gate)) for line in lines]
        try:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, row.expires_at - time.time())) if tasks else ((), ())
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if late:
            await self._close(row, "expired", "batch_expired", "the batch's completion_window ended before this line ran")
        else:
            await self._close(row, "completed", "", "")

    async def _line(self, key_id: str | None, batch_id: str, line: BatchLine, gate: asyncio.Semaphore) -> None:
        async with gate:
            reply = MemoryReply()
            caller = Caller(None, "batch", key_id=key_id or "")  # runs as the batch's creator (module docstring)
            call = Call(line.url.lstrip("/"), line.request.encode(), caller, batch_id=batch_id)
            try:
                await self.pipeline.handle(call, reply)
                status, body = reply.status, _json(reply.data)
            except LLMManagerError as exc:
                status, body = exc.status, exc.body()
            except Exception as exc:  # a bug must cost one line, not the batch
                log.exception("batch %s line %s", batch_id, line.custom_id)
                status, body = 500, {"error": {"message": f"internal error: {exc}", "type": "server_error"}}
            result = output_line(line.custom_id, status, body)
            await asyncio.to_thread(self._commit, line.id, 200 <= status < 300, result)

    def _commit(self, line_id: Any, ok: bool, result: dict[str, Any]) -> None:
        usage = self.pipeline.accounting.store
        if usage is not None:
            usage.flush()  # the line's usage row first: a committed line always has its row
        self._need_store().finish_line(line_id, ok, result)

    async def _close(self, row: Batch, status: str, code: str, message: str) -> None:
        """Unrun lines become error lines (``code``), then the output and error files, then the final status."""
        store = self._need_store()
        if status != "completed":
            await asyncio.to_thread(store.finish_pending, row.id, lambda cid: error_line(cid, code, message))
        if status == "completed":
            await asyncio.to_thread(store.set_status, row.id, "finalizing")
        ids: dict[str, str | None] = {}
        for ok, name in ((True, "output"), (False, "error")):
            data = await asyncio.to_thread(store.results, row.id, ok)
            file_id = f"file-{row.id.removeprefix('batch_')}-{name}"
            if data:
                await asyncio.to_thread(store.save_file, data, f"{row.id}_{name}.jsonl", "batch_output", row.key_id,
                                        file_id)
            ids[f"{name}_file_id"] = file_id if data else None
        await asyncio.to_thread(store.set_status, row.id, status, **ids)
        log.info("batch %s %s", row.id, status)


def owns(key: KeyInfo | None, owner: str | None) -> bool:
    """A key sees its own files and batches; the admin key (and anyone on an open server) sees all."""
    return key is None or key.admin or key.id == owner


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")
