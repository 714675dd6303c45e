"""The Batches tab against a real Service (usage store, batch runner, fake-backend models): a batch's progress
up to ``completed``, cancel from the view, and the same list through the HTTP Client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import panel as pn
import pytest
from helpers import config_doc, fake_model, wait_until_async
from panel.models.tabulator import DataTabulator

from llm_manager.api.app import build_server
from llm_manager.client import Client
from llm_manager.config.parse import parse_config
from llm_manager.panel_app.dashboard import TABS, Dashboard
from llm_manager.panel_app.source import LocalSource, RemoteSource
from llm_manager.panel_app.views.batches import CANCEL_HTML, BatchesView, batch_rows, until
from llm_manager.runtime.manager import Manager
from llm_manager.service import Service, build

ADMIN = "sekrit"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    models = {"embed": fake_model("Embedding"),
              "slow": fake_model("Chat", args=["--tokens-per-second", "20"], max_concurrency=1)}
    svc = build(parse_config(config_doc(models, flush_interval=0.05, admin_key=ADMIN), tmp_path), tmp_path)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown()


async def _batch(svc: Service, lines: list[dict[str, Any]], endpoint: str) -> str:
    """Upload the lines and create the batch, as POST /v1/files and POST /v1/batches do (open server: no key)."""
    assert svc.batches is not None and svc.batches.store is not None
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    f = await asyncio.to_thread(svc.batches.store.save_file, data, "in.jsonl", "batch", None)
    batch = await svc.batches.create(None, {"input_file_id": f["id"], "endpoint": endpoint})
    return batch["id"]


def _embed_lines(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": "embed", "input": f"text {i}"}} for i in range(n)]


def _slow_lines(n: int) -> list[dict[str, Any]]:  # 10 tokens at 20 tokens/s, one at a time: ~0.5 s a line
    return [{"custom_id": f"s{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "slow", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}}
            for i in range(n)]


def _row(d: Dashboard, batch_id: str) -> Any:
    return d.batches.table.value.loc[batch_id]


async def test_a_batch_shows_its_progress_until_completed(service: Service) -> None:
    d = Dashboard(service)
    assert isinstance(d.source, LocalSource) and d.source.runner is service.batches
    await d.batches.refresh()
    assert d.batches.available and d.batches.table.value.empty and not d.batches.error.visible

    first = await _batch(service, _embed_lines(3), "/v1/embeddings")
    batch_id = await _batch(service, _embed_lines(12), "/v1/embeddings")
    await d.batches.refresh()
    assert list(d.batches.table.value.index[:2]) == [batch_id, first]  # newest first
    row = _row(d, batch_id)
    assert row["endpoint"] == "/v1/embeddings" and row["done"].endswith("/ 12")
    seen: set[float] = set()

    async def completed() -> bool:
        await d.batches.tick()  # the dashboard's tick: refreshes at once while a batch runs
        seen.add(_row(d, batch_id)["progress"])
        return "completed" in _row(d, batch_id)["status"]

    deadline = asyncio.get_running_loop().time() + 30
    while not await completed():
        assert asyncio.get_running_loop().time() < deadline, _row(d, batch_id).to_dict()
        await asyncio.sleep(0.02)
    row = _row(d, batch_id)
    assert row["progress"] == 100.0 and row["done"] == "12 / 12" and row["failed"] == "0"
    assert row["action"] == "" and row["expires"] == "—"  # finished: nothing to cancel, no deadline
    assert max(seen) == 100.0
    assert "in progress" in d.batches.summary.object and not d.batches.error.visible


async def test_cancel_from_the_view(service: Service) -> None:
    d = Dashboard(service)
    batch_id = await _batch(service, _slow_lines(20), "/v1/chat/completions")
    await d.batches.refresh()
    row = _row(d, batch_id)
    assert "in progress" in row["status"] and row["action"] == CANCEL_HTML and row["expires"].startswith("in 23 h")
    assert await wait_until_async(lambda: service.batches.store.counts(batch_id)["completed"] >= 1, timeout=30)
    await d.batches.tick()
    assert 0 < _row(d, batch_id)["progress"] < 100  # part way

    d.batches._on_cell_click(SimpleNamespace(column="action", row=0))  # the row's "✕ cancel"
    await d.batches.wait_actions()
    assert service.batches.store.batch(batch_id)["status"] in ("cancelling", "cancelled")
    assert await wait_until_async(lambda: service.batches.store.batch(batch_id)["status"] == "cancelled", timeout=15)
    await d.batches.refresh()
    row = _row(d, batch_id)
    assert "cancelled" in row["status"] and row["action"] == ""
    done, total = (int(x) for x in row["done"].split(" / "))
    assert total == 20 and done == 20 and int(row["failed"]) >= 1  # unrun lines became error lines
    assert f"**{batch_id}** cancel" in d.batches.messages.object
    assert not d.batches.active and not d.batches.error.visible


async def test_remote_source_lists_the_same_batches(service: Service) -> None:
    batch_id = await _batch(service, _embed_lines(5), "/v1/embeddings")
    slow_id = await _batch(service, _slow_lines(20), "/v1/chat/completions")
    server = build_server(service, "127.0.0.1", 0, dashboard=False)
    server.start()
    client = Client(f"http://127.0.0.1:{server.port}", api_key=ADMIN)
    try:
        local, remote = Dashboard(service), Dashboard(RemoteSource(client))
        assert await wait_until_async(lambda: service.batches.store.batch(batch_id)["status"] == "completed",
                                      timeout=30)
        await remote.batches.refresh()
        assert not remote.batches.error.visible, remote.batches.error.object
        assert list(remote.batches.table.value.index[:2]) == [slow_id, batch_id]
        assert _row(remote, batch_id)["done"] == "5 / 5" and "completed" in _row(remote, batch_id)["status"]
        await remote.batches.cancel(slow_id)
        assert await wait_until_async(lambda: service.batches.store.batch(slow_id)["status"] == "cancelled",
                                      timeout=15)
        await local.batches.refresh()
        await remote.batches.refresh()
        assert local.batches.table.value.equals(remote.batches.table.value)
    finally:
        await asyncio.to_thread(client.close)
        server.stop()


async def test_no_batches_api_is_a_note_not_an_error(tmp_path: Path) -> None:
    m = Manager(parse_config(config_doc({"embed": fake_model("Embedding")}), tmp_path), data_dir=tmp_path)
    d = Dashboard(m)  # a bare Manager: no runner, no store
    await d.batches.refresh()
    assert not d.batches.available and d.batches.note.visible and not d.batches.error.visible
    assert "Batches" in TABS


def test_table_columns_are_titled_and_not_sortable() -> None:
    view = BatchesView(SimpleNamespace())
    (table,) = pn.Column(view.panel).get_root().select({"type": DataTabulator})
    titles = {c.field: c.title for c in table.columns}
    for col in table.configuration["columns"]:
        assert col.get("headerSort") is False and (col.get("title") or titles.get(col["field"], "")).strip(), col
        if col["field"] in ("done", "failed"):
            assert col.get("hozAlign") == col.get("headerHozAlign") == "right", col
    assert titles["progress"] == "progress %" and titles["done"] == "done / total"


def test_rows_read_as_a_person_would() -> None:
    now = 1_800_000_000.0
    batches = [{"id": "batch_old", "endpoint": "/v1/embeddings", "status": "completed", "created_at": now - 90,
                "expires_at": now + 3600, "request_counts": {"total": 2000, "completed": 1990, "failed": 10}},
               {"id": "batch_new", "endpoint": "/v1/chat/completions", "status": "in_progress", "created_at": now,
                "expires_at": now + 86399, "request_counts": {"total": 1500, "completed": 300, "failed": 75}}]
    rows = batch_rows(batches, now)
    assert list(rows.index) == ["batch_new", "batch_old"]
    assert rows.loc["batch_new", "done"] == "375 / 1,500" and rows.loc["batch_new", "progress"] == 25.0
    assert rows.loc["batch_new", "expires"] == "in 23 h 59 min" and rows.loc["batch_new", "action"] == CANCEL_HTML
    assert rows.loc["batch_old", "done"] == "2,000 / 2,000" and rows.loc["batch_old", "failed"] == "10"
    assert until(now + 30, now) == "in 30 s" and until(now - 1, now) == "due" and until(None, now) == "—"
