"""What a person sees on the dashboard, checked on the Panel and Bokeh objects the browser receives: states as
they change (``starting`` included), the loading line, one action per row, readable tables and money axes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import panel as pn
import pytest
from bokeh.models import CustomJSTickFormatter, HoverTool
from helpers import config_doc, fake_model, wait_until_async
from panel.models.tabulator import DataTabulator

from llm_manager.config.parse import parse_config
from llm_manager.panel_app.charts import hbars
from llm_manager.panel_app.dashboard import Dashboard
from llm_manager.panel_app.views.devices import DevicesView, device_rows
from llm_manager.panel_app.views.models import action_for
from llm_manager.runtime.manager import Manager

GPU = "Sim GPU 8G"


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    models = {name: fake_model("Chat", memory={"sim gpu": mb}, args=["--load-delay", "0.2"])
              for name, mb in (("alpha", 5000), ("beta", 2000))}
    m = Manager(parse_config(config_doc(models, gpus={GPU: 8000}, alive_time=0), tmp_path), data_dir=tmp_path)
    await m.start()
    try:
        yield m
    finally:
        await m.shutdown()


@pytest.fixture
async def dash(manager: Manager) -> Dashboard:
    d = Dashboard(manager)
    await d.refresh_all()
    return d


def _states(d: Dashboard) -> dict[str, str]:
    return {m["name"]: m["state"] for m in d.models.models}


def _tabulators(viewable: pn.viewable.Viewable) -> list[DataTabulator]:
    """The Bokeh models of every table in a view, as the browser receives them."""
    return list(pn.Column(viewable).get_root().select({"type": DataTabulator}))


async def test_loading_progress_shows_while_starting(tmp_path: Path) -> None:
    """The loading line is one HTML pane updated in place, never rows added and removed: BokehJS builds a new
    child view asynchronously, and a removal arriving meanwhile left a stale "loading" row under a ready model."""
    doc = config_doc({"slow": fake_model(memory={"sim gpu": 1000}, args=["--load-delay", "1.5"])},
                     gpus={GPU: 8000})
    m = Manager(parse_config(doc, tmp_path), data_dir=tmp_path)
    await m.start()
    try:
        d = Dashboard(m)
        root = d.models.panel.get_root()
        pane = d.models.loading._models[root.ref["id"]][0]
        children = list(root.children)
        task = asyncio.ensure_future(m.start_model("slow"))
        assert await wait_until_async(lambda: m.model_info("slow")["state"] == "starting", timeout=15)
        assert await wait_until_async(lambda: (m.model_info("slow")["start_elapsed_s"] or 0) > 0.5, timeout=15)
        await d.refresh_models()
        assert _states(d)["slow"] == "starting"
        assert d.models.table.value.loc["slow", "loading %"] > 0
        text = d.models.loading.object
        assert "<b>slow</b> loading (gpu):" in text and "of 300 s timeout" in text and "<progress" in text
        assert pane.text  # what the browser gets
        await task
        await d.refresh_models()
        assert _states(d)["slow"] == "ready"
        assert pane.text == "" and d.models.loading.object == ""
        assert d.models.loading._models[root.ref["id"]][0] is pane and list(root.children) == children
    finally:
        await m.shutdown()


async def test_a_start_from_the_api_shows_starting(manager: Manager, dash: Dashboard) -> None:
    """Each state change the manager publishes is on screen at once, not at the next one-second poll: a model
    started through POST /api/models/{m}/start that loads in 0.3 s went from stopped straight to ready."""
    dash.watch()
    shown: list[tuple[str, str]] = []
    manager.bus.subscribe("model", lambda _t, info: shown.append(
        (info["state"], dash.models.table.value.loc[info["name"], "state"])))
    await manager.start_model("alpha")  # what the API handler awaits
    assert [state for state, _cell in shown] == ["starting", "ready"]
    assert all(state in cell for state, cell in shown)  # the table already said so when the event went out
    assert "1 ready" in dash.status.object
    assert "stop this model" in dash.models.table.value.loc["alpha", "action"]
    dash.unwatch()
    await manager.stop_model("alpha")
    assert "ready" in dash.models.table.value.loc["alpha", "state"]  # no longer following: the poll catches up
    await dash.refresh_models()
    assert "stopped" in dash.models.table.value.loc["alpha", "state"]


async def test_each_row_offers_the_action_its_state_allows(manager: Manager, dash: Dashboard) -> None:
    """A ready model offers ■ stop, not ▶ start; a click on the link does what it says."""
    assert [action_for(s) for s in ("stopped", "failed", "starting", "ready", "stopping")] == [
        "start", "start", "stop", "stop", None]
    await manager.start_model("alpha")
    await dash.refresh_models()
    table = dash.models.table.value
    assert "stop this model" in table.loc["alpha", "action"] and "start this model" not in table.loc["alpha", "action"]
    assert "start this model" in table.loc["beta", "action"] and "stop this model" not in table.loc["beta", "action"]
    dash.models._on_cell_click(SimpleNamespace(column="action", row=0))  # alpha's "■ stop"
    await dash.models.wait_actions()
    assert manager.model_info("alpha")["state"] == "stopped"
    assert "start this model" in dash.models.table.value.loc["alpha", "action"]
    dash.models._on_cell_click(SimpleNamespace(column="model", row=1))  # not a link: nothing happens
    assert not dash.models._tasks and manager.model_info("beta")["state"] == "stopped"


async def test_tables_have_headers_and_no_sort_arrows(dash: Dashboard) -> None:
    """Every column a person sees is named, and no header offers a sort the tables do not keep (the button
    columns had empty titles and sort arrows)."""
    for view in (dash.models, dash.devices, dash.throughput):
        for table in _tabulators(view.panel):
            assert not table.buttons, view.title  # Tabulator builds those in the browser: no title, sortable
            titles = {c.field: c.title for c in table.columns}
            for col in table.configuration["columns"]:
                assert col.get("headerSort") is False, (view.title, col)
                if col.get("formatter") != "rowSelection":
                    assert (col.get("title") or titles.get(col.get("field"), "")).strip(), (view.title, col)


async def test_number_columns_line_up_with_their_headers(dash: Dashboard) -> None:
    """The throughput table: no stretched last column (TTFT p95 sat a screen away from its header), and a
    number column's header is aligned as its numbers are."""
    for view in (dash.throughput,):
        (table,) = _tabulators(view.table)
        assert table.layout != "fit_data_stretch", view.title
        for col in table.configuration["columns"]:
            if col["field"] not in ("model", "cost"):
                assert col.get("hozAlign") == col.get("headerHozAlign") == "right", (view.title, col)


def test_held_by_shows_every_holder() -> None:
    """Several models on one GPU: one line each, in a wrapping column (a fixed-width one cut them off)."""
    devices = [{"name": GPU, "total_memory_mb": 24000, "used_memory_mb": 9000, "models": [
        {"model": "Qwen3-Coder-30B-A3B-Instruct", "memory_mb": 16000, "state": "ready"},
        {"model": "embedding", "memory_mb": 1500, "state": "starting"}]}]
    held = device_rows(devices).loc[0, "held by"]
    assert held.split("\n") == ["Qwen3-Coder-30B-A3B-Instruct 16,000 MB (ready)", "embedding 1,500 MB (starting)"]
    (table,) = _tabulators(DevicesView(SimpleNamespace(device_interval=1.0)).table)
    column = next(c for c in table.configuration["columns"] if c["field"] == "held by")
    assert column["formatter"] == "textarea" and "width" not in column  # wraps, and takes the remaining width


def test_cost_axis_is_money_not_scientific() -> None:
    """Small costs read $0.0025 on the axis and in the tooltip, not 2.500e−3; token counts 1,250,000."""
    frame = pd.DataFrame({"model": ["chat", "embed"], "cost": [0.0025, 0.0004], "requests": [3, 1200],
                          "total_tokens": [1500, 1_250_000]})
    fig = hbars(frame, "model", "cost", "By model", "USD").draw()
    formatter = fig.xaxis[0].formatter
    assert isinstance(formatter, CustomJSTickFormatter) and formatter.args == {"prefix": "$", "suffix": ""}
    (hover,) = fig.select(HoverTool)
    assert dict(hover.tooltips)["cost"] == "@{cost}{$0,0.00[000000]}"
    assert hbars(frame, "model", "cost", "By model", "CHF").draw().xaxis[0].formatter.args == {"prefix": "",
                                                                                         "suffix": " CHF"}
    assert hbars(frame, "model", "total_tokens", "By model", None).draw().xaxis[0].formatter.format == "0,0.[00]"


def test_memory_declared_beside_measured_when_reported() -> None:
    """The learned footprint (``memory_declared_mb`` / ``memory_measured_mb``, device -> MB or null) beside what
    the config declares; "—" for a manager that reports none (the column is always there)."""
    from llm_manager.panel_app.views.models import COLUMNS, MEMORY, memory_text, model_rows

    assert MEMORY in COLUMNS and model_rows([{"name": "a", "state": "stopped"}])[MEMORY].tolist() == ["—"]
    learned = [{"name": "a", "state": "ready", "memory_declared_mb": {"gpu0": 5000},
                "memory_measured_mb": {"gpu0": 4812.4}},
               {"name": "b", "state": "stopped", "memory_declared_mb": {"gpu0": 3000, "gpu1": 1000},
                "memory_measured_mb": None},
               {"name": "c", "state": "stopped"}]
    rows = model_rows(learned)
    assert list(rows.columns) == COLUMNS
    assert rows[MEMORY].tolist() == ["5,000 / 4,812 MB", "gpu0: 3,000 / — MB; gpu1: 1,000 / — MB", "—"]
    assert memory_text({"memory_declared_mb": None, "memory_measured_mb": {"cpu": 700}}) == "— / 700 MB"
    assert memory_text({"memory_declared_mb": "junk"}) == "—"
