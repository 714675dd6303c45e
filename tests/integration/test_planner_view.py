"""The dashboard's what-if planner shows the manager's own plan, so it says what ``/api/plan`` says.

A real Manager (fake-backend processes, one 8 GB simulated GPU) serves its API in this process; the planner
view runs once on the in-process source and once through the HTTP client, as the standalone dashboard does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import config_doc, fake_model

from llm_manager.api.app import build_server
from llm_manager.client import Client
from llm_manager.config.parse import parse_config
from llm_manager.panel_app.source import LocalSource, RemoteSource
from llm_manager.panel_app.views.planner import PlannerView
from llm_manager.runtime.manager import Manager
from llm_manager.service import build


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Manager, Client]]:
    doc = config_doc({"alpha": fake_model("Chat", memory={"sim gpu": 5000}),
                      "beta": fake_model("Chat", memory={"sim gpu": 4000})},
                     gpus={"Sim GPU 8G": 8000}, alive_time=0, Disable_GPU_monitoring=True)
    service = build(parse_config(doc, tmp_path), tmp_path / "data", with_store=False)
    manager = service.manager
    await service.start()
    server = build_server(service, "127.0.0.1", 0, dashboard=False)
    server.start()
    client = Client(f"http://127.0.0.1:{server.port}")
    try:
        yield manager, client
    finally:
        await asyncio.to_thread(client.close)
        server.stop()
        await manager.shutdown()


async def planned(view: PlannerView, names: list[str], name: str) -> dict[str, Any]:
    view.set_models([{"name": n} for n in names])
    view.model.value = name
    await view.refresh()
    assert view.plan is not None
    return view.plan


async def test_a_running_model_is_shown_where_it_runs_as_the_api_says(served: tuple[Manager, Client]) -> None:
    manager, client = served
    await manager.start_model("alpha")
    api = await asyncio.to_thread(client.plan, "alpha")
    assert (api["running"], api["fits"], api["profile"], api["evict"]) == ("ready", True, "gpu", [])
    assert api["reason"].startswith("already ready with profile gpu on sim gpu; it holds its memory now")
    (dev,) = api["devices"]  # free memory counts what alpha itself holds
    assert (dev["needed_mb"], dev["free_before_mb"], dev["free_after_mb"]) == (5000, 8000, 3000)

    for source in (LocalSource(manager), RemoteSource(client)):
        view = PlannerView(source)
        assert await planned(view, ["alpha", "beta"], "alpha") == api
        assert view.summary.object == f"**alpha** is {api['reason']}."
        assert view.summary.alert_type == "info"
        row = view.devices.value.iloc[0]
        assert (row["needed MB"], row["free before MB"], row["free after MB"]) == (5000, 8000, 3000)
        assert "alpha (5000 MB, ready)" in row["held by"]


async def test_a_stopped_model_is_planned_as_a_start_would_place_it(served: tuple[Manager, Client]) -> None:
    manager, client = served
    await manager.start_model("alpha")
    view = PlannerView(LocalSource(manager))
    plan = await planned(view, ["alpha", "beta"], "beta")
    assert (plan["running"], plan["fits"], plan["evict"]) == (None, True, ["alpha"])
    assert plan == await asyncio.to_thread(client.plan, "beta")
    assert view.summary.alert_type == "warning" and "alpha" in view.summary.object
    await manager.stop_model("alpha")
    plan = await planned(view, ["alpha", "beta"], "alpha")
    assert (plan["running"], plan["evict"], view.summary.alert_type) == (None, [], "success")
