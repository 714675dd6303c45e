"""Placement decides on one snapshot: a model that becomes ready while the devices are read is still counted.

Three 10 GB models on one 24 GB simulated GPU, in a real Manager running fake-backend processes. ``b`` is
starting when the device read that places ``c`` begins; a hook around the registry's read lets ``b`` finish
(its launch waits on a FIFO the hook opens) and holds the read open until ``b`` is ready. The interleaving is
forced, not left to timing: counting ``b`` in neither the reading nor the reservations puts ``c`` beside ``a``
and ``b`` on a GPU that holds two.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from helpers import config_doc, fake_model

from llm_manager.config.parse import parse_config
from llm_manager.runtime.manager import Manager

GB10 = 10_000
TOTAL = 24_000


def reached(manager: Manager, name: str, state: str) -> threading.Event:
    """Set once ``name`` enters ``state`` (told by the manager's bus; waitable from any thread)."""
    event = threading.Event()

    def on_model(_topic: str, info: dict[str, Any]) -> None:
        if info["name"] == name and info["state"] == state:
            event.set()

    manager.bus.subscribe("model", on_model)
    return event


def gated_model(gate: Path) -> dict[str, Any]:
    """A fake model whose process waits for a line on the FIFO ``gate`` before it starts serving."""
    block = fake_model("Chat", memory={"gpu": GB10})
    block["command"] = ["sh", "-c", 'read _ < "$0" && exec "$@"', str(gate), *block["command"]]
    return block


async def test_a_model_that_becomes_ready_during_placement_is_not_overcommitted(tmp_path: Path) -> None:
    gate = tmp_path / "b.gate"
    os.mkfifo(gate)
    doc = config_doc({"a": fake_model("Chat", memory={"gpu": GB10}), "b": gated_model(gate),
                      "c": fake_model("Chat", memory={"gpu": GB10})},
                     gpus={"gpu": TOTAL}, alive_time=0, Disable_GPU_monitoring=True,
                     scheduler="fifo")  # one placement, one device read (swap-aware would wait out a's residency)
    manager = Manager(parse_config(doc, tmp_path), data_dir=tmp_path / "data")
    await manager.start()
    try:
        await manager.start_model("a")
        b_starting, b_ready = reached(manager, "b", "starting"), reached(manager, "b", "ready")
        start_b = asyncio.ensure_future(manager.start_model("b"))
        assert await asyncio.to_thread(b_starting.wait, 30)

        real_read = manager.devices.read
        seen: dict[str, Any] = {}

        def read_while_b_becomes_ready() -> list[dict[str, Any]]:
            seen["b at read"] = manager.supervisors["b"].state.value
            readings = real_read()
            seen["used at read"] = next(r["used_memory_mb"] for r in readings if r["name"] == "gpu")
            with open(gate, "w") as fifo:  # b's process may load now...
                fifo.write("go\n")
            seen["b ready before the read returned"] = b_ready.wait(30)  # ...and is ready before we return
            return readings

        manager.devices.read = read_while_b_becomes_ready  # type: ignore[method-assign]
        try:
            await manager.start_model("c")
        finally:
            manager.devices.read = real_read  # type: ignore[method-assign]
        await start_b

        assert seen == {"b at read": "starting", "used at read": GB10, "b ready before the read returned": True}
        states = {name: sup.state.value for name, sup in manager.supervisors.items()}
        assert states == {"a": "stopped", "b": "ready", "c": "ready"}  # a was evicted to make room for c
        held = sum(sup.profile.memory_mb["gpu"] for sup in manager.supervisors.values()
                   if sup.state.value == "ready" and sup.profile is not None)
        assert held <= TOTAL
        assert any(e["kind"] == "evict" and e["model"] == "a" and "for c" in e["detail"] for e in manager.events)
    finally:
        await manager.shutdown()


async def test_a_what_if_plan_waits_for_a_placement_in_progress(tmp_path: Path) -> None:
    """``plan()`` takes the placement lock: it answers after a start has placed itself, never halfway."""
    doc = config_doc({"a": fake_model("Chat", memory={"gpu": GB10})}, gpus={"gpu": TOTAL},
                     alive_time=0, Disable_GPU_monitoring=True)
    manager = Manager(parse_config(doc, tmp_path), data_dir=tmp_path / "data")
    await manager.start()
    try:
        async with manager._placement_lock:  # a start placing itself holds this lock
            what_if = asyncio.ensure_future(manager.plan("a"))
            await asyncio.sleep(0)  # let it run up to the lock
            assert not what_if.done()
            manager.supervisors["a"].begin_start(manager.supervisors["a"].model.profiles[0])
        p = await what_if
        assert (p.running, p.profile, p.evict) == ("starting", "gpu", ())
        assert p.devices[0].free_before_mb == TOTAL and p.devices[0].free_after_mb == TOTAL - GB10
    finally:
        await manager.shutdown()
