"""The ipywidgets control panel against a real in-process Manager running real fake-backend processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until_async

from llm_manager.config.files import read_document
from llm_manager.notebook import DEMO_CONFIG, control_panel, dashboard, demo_document, start_demo
from llm_manager.runtime.manager import Manager

RTX4090 = "NVIDIA GeForce RTX 4090 (simulated)"


@pytest.fixture
async def manager(tmp_path: Path):
    m = Manager(read_document(demo_document(), DEMO_CONFIG.parent, DEMO_CONFIG), tmp_path)
    await m.start()
    yield m
    await m.shutdown()


async def until(check, timeout: float = 20.0) -> None:
    assert await wait_until_async(check, timeout, 0.05), "condition not met in time"


async def test_start_button_gauges_and_log_tail(manager: Manager):
    panel = control_panel(manager, interval=0.2)
    try:
        await until(lambda: "demo-chat" in panel.buttons)  # the live task filled the table
        assert "stopped" in panel.state_labels["demo-chat"].value
        panel.buttons["demo-chat"][0].click()
        await until(lambda: manager.model_info("demo-chat")["state"] == "ready")
        await manager.sample_devices()
        await panel.refresh()
        assert "ready" in panel.state_labels["demo-chat"].value
        start, stop = panel.buttons["demo-chat"]
        assert start.disabled and not stop.disabled

        gauge = panel.gauges[RTX4090]
        assert gauge.memory.max == 24564
        assert gauge.memory.value == 900 + 14000  # other programs' 900 MB plus the model's profile
        assert gauge.memory_label.value.startswith("14,900 / 24,564 MB")
        assert "demo-chat (14,000 MB)" in gauge.holders.value
        assert gauge.util.value == pytest.approx(60.7)
        assert "°C" in gauge.temp.value

        panel.log_model.value = "demo-chat"
        await panel.refresh()
        assert "fake-backend listening on" in panel.log_text.value
        assert "[manager] launch:" in panel.log_text.value

        stop.click()
        await panel.wait_for("demo-chat", "stopped")
        assert "stopped" in panel.state_labels["demo-chat"].value
    finally:
        panel.close()
    assert panel._task is None


async def test_close_stops_the_refresh_task(manager: Manager):
    panel = control_panel(manager, interval=0.05)
    task = panel._task
    assert task is not None
    await until(lambda: "demo-chat" in panel.buttons)  # the refresh task has run
    panel.close()
    await until(task.done)
    assert task is not None and task.cancelled()


async def test_failed_action_is_shown_not_raised(manager: Manager):
    panel = control_panel(manager, interval=0)
    await panel.refresh()
    panel.start("no-such-model")
    await until(lambda: "failed" in panel.status.value)
    panel.close()


async def test_control_panel_over_http_runs_the_client_in_a_thread(tmp_path: Path):
    demo = await start_demo(data_dir=tmp_path)
    panel = control_panel(demo.client(), interval=0.2)
    try:
        await until(lambda: "demo-embedding" in panel.buttons)
        panel.buttons["demo-embedding"][0].click()
        await panel.wait_for("demo-embedding", "ready", timeout=30)
        assert demo.manager.model_info("embed")["state"] == "ready"
        panel.log_model.value = "demo-embedding"
        await panel.refresh()
        assert "fake-backend listening on" in panel.log_text.value
        held = next(d for d in panel.devices if d["name"].startswith("NVIDIA GeForce RTX 4060"))
        assert [h["model"] for h in held["models"]] == ["demo-embedding"]
    finally:
        panel.close()
        await demo.close()
    assert (tmp_path / "config.json").exists()  # a caller's data_dir is kept


async def test_dashboard_renders_the_panel_views(manager: Manager):
    view = dashboard(manager)
    assert hasattr(view, "dashboard"), view  # not the "could not be loaded" Markdown pane
    await view.dashboard.refresh_all(analysis=False)
