"""The Batches API's durable state: uploaded files (bytes under data_dir/files/, a row each), batches and their lines.

Every method is blocking (call it off the IOLoop) and commits before it returns: a line counts as done only once
its result row is committed, so a restart resumes exactly the lines that are not.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from .schema import Batch, BatchFile, BatchLine

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
TIME_FIELDS = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
               "cancelled_at")


class BatchStore:
    def __init__(self, engine: Engine, files_dir: Path):
        self.engine = engine
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- files

    def save_file(self, data: bytes, filename: str, purpose: str, key_id: str | None,
                  file_id: str | None = None) -> dict[str, Any]:
        """Write the bytes (fsynced, renamed into place), then the row: a row never names a missing file."""
        file_id = file_id or "file-" + secrets.token_hex(12)
        tmp = self.files_dir / f".{file_id}.tmp"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.files_dir / file_id)
        row = BatchFile(id=file_id, created_at=time.time(), filename=filename, purpose=purpose, bytes=len(data),
                        key_id=key_id)
        with Session(self.engine, expire_on_commit=False) as s:
            s.merge(row)
            s.commit()
        return self.file(file_id) or {}

    def file_row(self, file_id: str) -> BatchFile | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(BatchFile, file_id)

    def file(self, file_id: str) -> dict[str, Any] | None:
        row = self.file_row(file_id)
        return None if row is None else file_object(row)

    def files(self, key_id: str | None, all_keys: bool, purpose: str | None = None) -> list[dict[str, Any]]:
        q = select(BatchFile).order_by(BatchFile.created_at.desc())  # type: ignore[attr-defined]
        if not all_keys:
            q = q.where(BatchFile.key_id == key_id)
        if purpose:
            q = q.where(BatchFile.purpose == purpose)
        with Session(self.engine, expire_on_commit=False) as s:
            return [file_object(r) for r in s.scalars(q)]

    def file_bytes(self, file_id: str) -> bytes:
        return (self.files_dir / file_id).read_bytes()

    def delete_file(self, file_id: str) -> None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(BatchFile, file_id)
            if row is not None:
                s.delete(row)
                s.commit()
        (self.files_dir / file_id).unlink(missing_ok=True)

    # ---------------------------------------------------------------- batches

    def create_batch(self, batch: Batch, lines: list[BatchLine]) -> None:
        """The batch and all its lines in one transaction: a crash leaves all of it or none."""
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(batch)
            s.add_all(lines)
            s.commit()

    def batch_row(self, batch_id: str) -> Batch | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(Batch, batch_id)

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        row = self.batch_row(batch_id)
        return None if row is None else batch_object(row, self.counts(batch_id))

    def batches(self, key_id: str | None, all_keys: bool, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first; ``after``: the page after that batch id (OpenAI's cursor)."""
        q = select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc())  # type: ignore[attr-defined]
        if not all_keys:
            q = q.where(Batch.key_id == key_id)
        if after:
            cursor = self.batch_row(after)
            if cursor is not None:
                q = q.where((Batch.created_at < cursor.created_at)
                            | ((Batch.created_at == cursor.created_at) & (Batch.id < cursor.id)))
        with Session(self.engine, expire_on_commit=False) as s:
            rows = list(s.scalars(q.limit(limit)))
        return [batch_object(r, self.counts(r.id)) for r in rows]

    def set_status(self, batch_id: str, status: str, **changes: Any) -> None:
        """A new status, stamped (``<status>_at``), with other column changes, in one commit."""
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(Batch, batch_id)
            if row is None:
                return
            times = json.loads(row.times_json)
            times.setdefault(f"{status}_at", int(time.time()))
            row.status, row.times_json = status, json.dumps(times)
            for k, v in changes.items():
                setattr(row, k, v)
            s.commit()

    def unfinished(self) -> list[str]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Batch.id).where(Batch.status.in_(ACTIVE))))  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- lines

    def pending(self, batch_id: str) -> list[BatchLine]:
        q = select(BatchLine).where(BatchLine.batch_id == batch_id, BatchLine.state == "pending")
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q.order_by(BatchLine.idx)))

    def finish_line(self, line_id: int, ok: bool, result: dict[str, Any]) -> None:
        with Session(self.engine, expire_on_commit=False) as s:
            s.execute(update(BatchLine).where(BatchLine.id == line_id, BatchLine.state == "pending")  # type: ignore[arg-type]
                      .values(state="done", ok=ok, result=json.dumps(result)))
            s.commit()

    def finish_pending(self, batch_id: str, result_of: Any) -> None:
        """Every line still pending done at once (one transaction), with ``result_of(custom_id)`` as its error."""
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(BatchLine).where(BatchLine.batch_id == batch_id, BatchLine.state == "pending")
            for line in s.scalars(q):
                line.state, line.ok, line.result = "done", False, json.dumps(result_of(line.custom_id))
            s.commit()

    def counts(self, batch_id: str) -> dict[str, int]:
        q = (select(BatchLine.state, BatchLine.ok, func.count()).where(BatchLine.batch_id == batch_id)
             .group_by(BatchLine.state, BatchLine.ok))
        total = completed = failed = 0
        with Session(self.engine, expire_on_commit=False) as s:
            for state, ok, n in s.execute(q):
                total += n
                if state == "done":
                    completed += n if ok else 0
                    failed += 0 if ok else n
        return {"total": total, "completed": completed, "failed": failed}

    def results(self, batch_id: str, ok: bool) -> bytes:
        """The output (``ok``) or error file's JSONL, in input order."""
        q = (select(BatchLine.result).where(BatchLine.batch_id == batch_id, BatchLine.state == "done",
                                            BatchLine.ok == ok).order_by(BatchLine.idx))
        with Session(self.engine, expire_on_commit=False) as s:
            return b"".join(r.encode() + b"\n" for r in s.scalars(q) if r)


def file_object(row: BatchFile) -> dict[str, Any]:
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": int(row.created_at),
            "filename": row.filename, "purpose": row.purpose, "status": "processed", "status_details": None}


def batch_object(row: Batch, counts: dict[str, int]) -> dict[str, Any]:
    """The OpenAI Batch object."""
    times = json.loads(row.times_json)
    return {"id": row.id, "object": "batch", "endpoint": row.endpoint, "errors": json.loads(row.errors_json),
            "input_file_id": row.input_file_id, "completion_window": row.completion_window, "status": row.status,
            "output_file_id": row.output_file_id, "error_file_id": row.error_file_id,
            "created_at": int(row.created_at), "expires_at": int(row.expires_at),
            **{k: times.get(k) for k in TIME_FIELDS}, "request_counts": counts,
            "metadata": json.loads(row.metadata_json)}
