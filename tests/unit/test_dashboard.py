"""The dashboard views against a real Manager running real fake-backend processes: what each view shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bokeh.document import Document
from helpers import config_doc, fake_model, wait_until_async

from llm_manager.accounting.layer import Accounting
from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.store import UsageStore
from llm_manager.api.app import build_server
from llm_manager.client import Client
from llm_manager.config.parse import parse_config
from llm_manager.gateway.pipeline import Pipeline
from llm_manager.panel_app.dashboard import Dashboard, create_dashboard
from llm_manager.panel_app.frames import frame_from_records, records_to_dicts
from llm_manager.panel_app.source import LocalSource, RemoteSource, monthly_budget
from llm_manager.panel_app.views.devices import HISTORY_POINTS
from llm_manager.panel_app.views.throughput import POINTS
from llm_manager.runtime.manager import Manager
from llm_manager.service import Service, build

GPU = "Sim GPU 8G"


def _doc(**program: object) -> dict:
    args = ["--load-delay", "0.2"]
    models = {
        "alpha": fake_model("Chat", memory={"sim gpu": 5000}, args=args, aliases=["a"]),
        "beta": fake_model("Chat", memory={"sim gpu": 4000}, args=args),
        "huge": fake_model("Base", memory={"sim gpu": 20000}, args=args),
    }
    return config_doc(models, gpus={GPU: 8000}, alive_time=0, monitor_interval=0.2,
                      admin_key="sekrit", **program)


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    m = Manager(parse_config(_doc(budgets=[{"scope": "global", "period": "month", "limit": 2.0}]), tmp_path),
                data_dir=tmp_path)
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


def _usage(model: str, cost: float, key: str | None = None, status: int = 200, ts: float | None = None) -> UsageRecord:
    return UsageRecord(model=model, endpoint="chat/completions", status=status, key_id=key, prompt_tokens=10,
                       completion_tokens=5, cost=cost, total_ms=120.0, ttft_ms=30.0, ts=ts or time.time())


async def test_models_table_and_start(manager: Manager, dash: Dashboard) -> None:
    table = dash.models.table.value
    assert list(table["model"]) == ["alpha", "beta", "huge"]
    assert all("stopped" in s for s in table["state"])
    assert "3 models" in dash.status.object and "3 stopped" in dash.status.object

    await manager.start_model("alpha")
    await dash.refresh_models()
    assert _states(dash)["alpha"] == "ready"
    assert "ready" in dash.models.table.value.loc["alpha", "state"]
    assert dash.models.table.value.loc["alpha", "profile"] == "gpu"

    await dash.devices.refresh()
    gpu = next(d for d in dash.devices.devices if d["name"] == GPU)
    assert [h["model"] for h in gpu["models"]] == ["alpha"]
    row = dash.devices.table.value.set_index("device").loc[GPU]
    assert "alpha 5,000 MB (ready)" in row["held by"]
    segments = dash.devices.bars.data
    assert any(label.startswith("alpha") for label in segments["label"])  # the stacked memory bar shows it


async def test_start_and_stop_buttons(manager: Manager, dash: Dashboard) -> None:
    """The per-row action and the batch action both reach the manager; the table follows."""
    tasks = dash.models.act("start", ["beta"])
    assert await wait_until_async(lambda: manager.model_info("beta")["state"] != "stopped", timeout=15)
    await dash.refresh_models()
    assert _states(dash)["beta"] in ("starting", "ready")
    await asyncio.gather(*tasks)
    await dash.models.wait_actions()
    assert _states(dash)["beta"] == "ready"
    assert "beta** ready" in dash.models.messages.object

    dash.models.table.selection = [1]  # beta
    assert dash.models.selected() == ["beta"] and not dash.models.stop_selected.disabled
    dash.models.stop_selected.clicks += 1
    await dash.models.wait_actions()
    assert manager.model_info("beta")["state"] == "stopped"

    dash.models.act("start", ["huge"])
    await dash.models.wait_actions()
    assert "huge**: start failed" in dash.models.messages.object
    assert "cannot start" in dash.models.messages.object


async def test_planner_shows_eviction_and_cannot_fit(manager: Manager, dash: Dashboard) -> None:
    await manager.start_model("alpha")
    await dash.refresh_models()  # the planner learns the models' states from the models view
    dash.planner.model.value = "alpha"
    await dash.planner.refresh()
    assert dash.planner.plan["running"] == "ready" and dash.planner.plan["evict"] == []
    assert "already ready" in dash.planner.summary.object and dash.planner.summary.alert_type == "info"
    dash.planner.model.value = "beta"
    await dash.planner.refresh()
    assert dash.planner.plan["evict"] == ["alpha"]
    assert "evict" in dash.planner.summary.object and "alpha" in dash.planner.summary.object
    assert dash.planner.summary.alert_type == "warning"
    row = dash.planner.devices.value.iloc[0]
    assert row["needed MB"] == 4000 and "alpha" in row["held by"]

    dash.planner.model.value = "huge"
    await dash.planner.refresh()
    assert dash.planner.summary.alert_type == "danger"
    assert "cannot start now" in dash.planner.summary.object
    assert dash.planner.plan["reason"] in dash.planner.summary.object


async def test_logs_view_shows_backend_output(manager: Manager, dash: Dashboard) -> None:
    await manager.start_model("alpha")
    dash.logs.model.value = "alpha"
    await dash.logs.refresh()
    text = dash.logs.text
    assert "fake-backend listening on" in text
    assert "out │" in text and "mgr │ launch:" in text


async def test_analysis_from_memory(manager: Manager, dash: Dashboard) -> None:
    assert getattr(manager, "store", None) is None
    for model, cost, key in (("alpha", 0.25, "k1"), ("alpha", 0.5, None), ("beta", 1.0, "k1")):
        manager.record_usage(_usage(model, cost, key))
    await dash.refresh_analysis()
    a = dash.insights.result
    assert a.totals["requests"] == 3 and a.totals["cost"] == pytest.approx(1.75) and a.totals["tokens"] == 45
    assert list(a.by_model["model"]) == ["beta", "alpha"]
    assert dict(zip(a.by_key["key_id"], a.by_key["cost"], strict=True)) == pytest.approx({"k1": 1.25,
                                                                                        "(no key)": 0.5})
    assert a.forecast["month_to_date_cost"] == pytest.approx(1.75)
    assert a.budget == 2.0 and "$1.75" in dash.insights.kpis.object
    assert "Budget $2.00" in dash.insights.burn_text.object
    assert dash.insights.cost_time.object is not None and dash.insights.model_bars.object is not None


async def test_analysis_from_store(manager: Manager, tmp_path: Path) -> None:
    store = UsageStore(None, tmp_path / "store", flush_interval=0.05)
    accounting = Accounting(manager, store)  # the usage layer as build() attaches it; the dashboard prefers its store
    try:
        d = Dashboard(LocalSource(manager, accounting))
        manager.record_usage(_usage("alpha", 0.125, "k2"))
        manager.record_usage(_usage("alpha", 0.125, "k2", status=500))
        store.flush()
        manager.usage.recent.clear()  # prove the numbers come from the database
        await d.refresh_analysis()
        a = d.insights.result
        assert a.totals["requests"] == 2 and a.totals["cost"] == pytest.approx(0.25)
        assert list(d.insights.by_model.frame["errors"]) == [1]
        assert list(a.errors["status"]) == [500]
    finally:
        store.close()


async def test_throughput_view_rolls(manager: Manager, dash: Dashboard) -> None:
    for i in range(4):
        rec = _usage("alpha", 0.0)
        rec.total_ms = 100.0 + 100 * i
        manager.record_usage(rec)
    await dash.throughput.refresh()
    table = dash.throughput.table.value.set_index("model")
    assert table.loc["alpha", "requests (1 min)"] == 4
    assert table.loc["alpha", "p50 ms"] == pytest.approx(250.0)
    assert table.loc["all models", "requests/s"] == pytest.approx(0.8)
    assert "alpha" in dash.throughput.model.options
    dash.throughput.model.value = "alpha"
    n = len(dash.throughput.series.data["time"])
    await dash.throughput.refresh()
    assert len(dash.throughput.series.data["time"]) == n + 1
    assert dash.throughput.series.data["p95_ms"][-1] == pytest.approx(385.0)
    for _ in range(POINTS + 20):  # an hour-long session stays bounded: rolling buffers, not growing lists
        await dash.throughput.tick()
    assert len(dash.throughput.series.data["time"]) == POINTS
    assert all(len(b) <= POINTS for b in dash.throughput.buffers.values())


async def test_device_history_is_bounded(dash: Dashboard) -> None:
    view = dash.devices
    for _ in range(HISTORY_POINTS + 50):
        view._last_ts = None  # pretend each refresh saw a new sample
        await view.refresh()
    assert len(view.history.data["time"]) == HISTORY_POINTS


async def test_refreshes_coalesce(dash: Dashboard) -> None:
    """Asking while a refresh runs gives one more pass, not a pile-up and not a lost request."""
    view = dash.planner
    calls: list[str] = []
    original = view._refresh

    async def slow() -> None:
        calls.append(view.model.value)
        await asyncio.sleep(0.05)
        await original()

    view._refresh = slow  # type: ignore[method-assign]
    await view.refresh()
    calls.clear()
    await asyncio.gather(view.refresh(), view.refresh(), view.refresh(), view.tick())
    assert len(calls) == 2 and not view._busy  # the first, then one pass for the three that came meanwhile


async def test_config_is_redacted(dash: Dashboard) -> None:
    assert dash.config.config["program"]["admin_key"] == "***"
    assert "alpha" in dash.config.config


async def test_dashboard_builds_and_stops(manager: Manager) -> None:
    layout = create_dashboard(manager, live=False)
    root = layout.get_root()
    assert layout.dashboard.template() is not None  # the browser's page builds too  # every view turns into Bokeh models (bad formatter options fail here)
    assert root is not None
    d = layout.dashboard
    d.callbacks = [type("CB", (), {"stopped": False, "stop": lambda self: setattr(self, "stopped", True)})()]
    cb = d.callbacks[0]
    doc = Document()
    doc.on_session_destroyed(d.on_session_destroyed)  # Bokeh checks the callback's signature here
    d.on_session_destroyed(None)
    assert cb.stopped and d.callbacks == []


def test_helpers() -> None:
    assert monthly_budget([{"scope": "key", "key_id": "x", "limit": 1}, {"period": "month", "limit": 5}]) == 5.0
    assert monthly_budget([{"period": "day", "limit": 5}]) is None
    df = frame_from_records([_usage("m", 0.5, ts=100.0), _usage("m", 0.25, ts=50.0)])
    assert list(df["ts"]) == [50.0, 100.0] and list(df["total_tokens"]) == [15, 15]
    assert len(frame_from_records([])) == 0
    rec = _usage("m", 0.5)
    assert records_to_dicts([rec]) == [rec.to_dict()]


async def test_remote_source_against_a_running_server(manager: Manager) -> None:
    """The standalone dashboard's source, through the HTTP Client, against the real server in this process."""
    accounting = Accounting(manager, None)
    server = build_server(Service(manager, accounting, Pipeline(manager, accounting)), "127.0.0.1", 0, dashboard=False)
    server.start()
    client = Client(f"http://127.0.0.1:{server.port}", api_key="sekrit")
    try:
        d = Dashboard(RemoteSource(client))
        await d.refresh_all()
        assert set(_states(d)) == {"alpha", "beta", "huge"}
        seen: list[tuple[str, str]] = []
        stop = d.source.watch_models(lambda info: seen.append((info["name"], info["state"])))
        try:
            assert await wait_until_async(lambda: ("alpha", "stopped") in seen, timeout=15)  # the socket's snapshot: subscribed
            await d.source.start("alpha")
            assert await wait_until_async(lambda: ("alpha", "ready") in seen, timeout=15)
            assert seen[-2:] == [("alpha", "starting"), ("alpha", "ready")]  # state changes pushed, in order
        finally:
            stop()
        await d.refresh_models()
        assert _states(d)["alpha"] == "ready"
        await d.devices.refresh()
        assert "alpha" in d.devices.table.value.set_index("device").loc[GPU, "held by"]
        d.planner.model.value = "huge"
        await d.planner.refresh()
        assert d.planner.summary.alert_type == "danger"
        assert d.config.config["program"]["admin_key"] == "***"
        assert not any(v.error.visible for v in (d.models, d.devices, d.throughput, d.config, d.insights))
    finally:
        await asyncio.to_thread(client.close)
        server.stop()


async def test_remote_analysis_reads_the_servers_store(tmp_path: Path) -> None:
    """With the accounting layers attached, the remote analysis reads /api/usage/requests and /api/budgets."""
    doc = _doc(budgets=[{"name": "month", "scope": "global", "period": "month", "limit": 4.0}])
    service = build(parse_config(doc, tmp_path), tmp_path)
    m = service.manager
    await service.start()
    server = build_server(service, "127.0.0.1", 0, dashboard=False)
    server.start()
    client = Client(f"http://127.0.0.1:{server.port}", api_key="sekrit")
    try:
        for cost, key in ((1.0, "k1"), (2.0, None)):
            m.record_usage(_usage("alpha", cost, key))
        d = Dashboard(RemoteSource(client))
        await d.refresh_analysis()
        assert not d.insights.error.visible, d.insights.error.object
        a = d.insights.result
        assert a.totals["requests"] == 2 and a.totals["cost"] == pytest.approx(3.0)
        assert set(a.by_key["key_id"]) == {"k1", "(no key)"}
        assert a.forecast["month_to_date_cost"] == pytest.approx(3.0)
        assert a.budget == 4.0
        d.insights.bar.keys.value = ["k1"]  # a filter narrows every view
        await d.insights.refresh(reload=False)
        assert d.insights.result.totals["cost"] == pytest.approx(1.0)
        assert list(d.insights.result.by_model["requests"]) == [1]
    finally:
        await asyncio.to_thread(client.close)
        server.stop()
        await m.shutdown()


def test_local_source_is_used_for_a_manager(manager: Manager) -> None:
    assert isinstance(Dashboard(manager).source, LocalSource)
