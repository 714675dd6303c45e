"""The dashboard's Cluster tab: the node registry's nodes (a real registry on a real SQLite store, a second node's
heartbeats written as that node would write them), and a manager without a shared database shown alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import config_doc, fake_model

from llm_manager.accounting.cluster import DOWN_AFTER, HEARTBEAT, NodeRegistry
from llm_manager.accounting.store import UsageStore
from llm_manager.config.parse import parse_config
from llm_manager.panel_app.dashboard import LIVE_TABS, Dashboard
from llm_manager.panel_app.source import LocalSource
from llm_manager.panel_app.views.cluster import ClusterView, device_rows, model_rows, node_rows, summary
from llm_manager.runtime.manager import Manager

GPU = "Sim GPU 8G"
OTHER = {"models": [{"name": "big", "state": "ready", "in_flight": 2, "queued": 1,
                     "instances": [{"id": "big#0", "state": "ready"}, {"id": "big#1", "state": "starting"}],
                     "upstreams": [{"id": "api.example.com", "healthy": False}]}],
         "devices": [{"name": "GPU-A", "online": True, "free_mb": 6000, "total_mb": 24000},
                     {"name": "GPU-B", "online": False, "free_mb": 0, "total_mb": 24000}], "version": "9.9"}


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    doc = config_doc({"alpha": fake_model("Chat", memory={"sim gpu": 3000})}, gpus={GPU: 8000}, alive_time=0,
                     monitor_interval=0.2, node_name="node-a")
    m = Manager(parse_config(doc, tmp_path), data_dir=tmp_path)
    await m.start()
    try:
        yield m
    finally:
        await m.shutdown()


def test_rows_read_as_a_person_would() -> None:
    now = 1_000_000.0
    nodes = [{"name": "node-a", "url": "http://a:8080", "up": True, "self": True, "last_seen": now - 1, **OTHER},
             {"name": "node-b", "url": "http://b:8080", "up": False, "self": False, "last_seen": now - 125,
              "models": [], "devices": []}]
    rows = node_rows(nodes, now)
    assert rows["node"].tolist() == ["node-a <i>(this one)</i>", "node-b"]
    assert ">up<" in rows.iloc[0]["status"] and ">down<" in rows.iloc[1]["status"]
    assert rows["last seen"].tolist() == ["now", "2 min ago"] and rows.iloc[1]["url"] == "http://b:8080"
    assert rows.iloc[0]["models"] == "1: 1 ready" and rows.iloc[1]["models"] == "none"
    assert rows.iloc[0]["devices"] == "2, 6,000 of 48,000 MB free"  # an offline device frees nothing
    models = model_rows(nodes)
    assert models[["node", "model", "in flight", "queued", "instances", "upstreams"]].values.tolist() == [
        ["node-a", "big", 2, 1, "1 ready of 2", "0 healthy of 1"]]
    devices = device_rows(nodes)
    assert devices[["device", "online", "free MB", "free %"]].values.tolist() == [["GPU-A", "yes", 6000, 25.0],
                                                                                  ["GPU-B", "no", 0, 0.0]]
    assert summary({"nodes": nodes}).startswith("**2 nodes, 1 up**")


async def test_a_manager_alone_shows_itself(manager: Manager) -> None:
    """No shared database: the tab shows this node with its models and its (simulated) device."""
    view = ClusterView(LocalSource(manager))
    await view.refresh()
    assert not view.error.visible, view.error.object
    assert view.body["single"] and [n["name"] for n in view.body["nodes"]] == ["node-a"]
    assert view.nodes.value["node"].tolist() == ["node-a <i>(this one)</i>"]
    assert view.models.value["model"].tolist() == ["alpha"] and ">stopped<" in view.models.value["state"].iloc[0]
    assert 8000 in view.devices.value["total MB"].tolist()  # the simulated GPU (beside the host's memory)
    assert "this manager alone" in view.summary.object
    await manager.start_model("alpha")
    await view.refresh()
    assert ">ready<" in view.models.value["state"].iloc[0]

    async def held() -> bool:  # a device sample after the start shows what the model holds as no longer free
        await view.refresh()
        devices = view.devices.value
        return int(devices[devices["total MB"] == 8000]["free MB"].iloc[0]) <= 8000 - 3000

    deadline = time.monotonic() + 20
    while not await held():
        assert time.monotonic() < deadline, view.body
        await asyncio.sleep(0.1)


async def test_the_registry_lists_every_node(manager: Manager, tmp_path: Path) -> None:
    """Two nodes on one store: this one (not yet beaten: added from the manager) and another one that stopped
    beating, shown down with its last report."""
    store = UsageStore(f"sqlite:///{tmp_path / 'usage.db'}", tmp_path)
    try:
        other = NodeRegistry(store.engine, "node-b")
        other.beat("http://b:8080", OTHER, now=time.time() - (DOWN_AFTER + 1) * HEARTBEAT)
        source = LocalSource(manager, cluster=NodeRegistry(store.engine, "node-a"))
        body = await source.cluster()
        assert [(n["name"], n["up"], n["self"]) for n in body["nodes"]] == [("node-a", True, True),
                                                                            ("node-b", False, False)]
        assert not body.get("single")
        NodeRegistry(store.engine, "node-a").beat("http://a:8080", {"models": [], "devices": []})
        body = await source.cluster()  # beaten: the registry's own entry, not a second one
        assert [n["name"] for n in body["nodes"]] == ["node-a", "node-b"] and body["nodes"][0]["url"] == "http://a:8080"
        view = ClusterView(source)
        await view.refresh()
        assert view.models.value[["node", "model"]].values.tolist() == [["node-b", "big"]]
        assert summary(view.body).startswith("**2 nodes, 1 up**")
    finally:
        store.close()


async def test_the_dashboard_has_the_tab(manager: Manager) -> None:
    dash = Dashboard(manager)
    await dash.refresh_all(analysis=False)
    assert "Cluster" in LIVE_TABS
    dash.show("Cluster")
    assert dash.current() == "Cluster"
    await dash._on_tab(None)
    assert dash.cluster.refreshes >= 2 and len(dash.cluster.nodes.value) == 1
