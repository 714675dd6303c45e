"""The device monitoring loop samples at its interval, and not at all with Disable_GPU_monitoring."""

from __future__ import annotations

import asyncio

from llm_manager.config import parse_config
from llm_manager.manager import Manager


def config(disable: bool):
    return parse_config({"program": {"monitor_interval": 0.1, "Disable_GPU_monitoring": disable,
                                     "simulated_devices": [{"name": "gpu", "total_memory_mb": 1000}]}}, ".")


async def run_for(disable: bool, tmp_path) -> tuple[int, list[str]]:
    manager = Manager(config(disable), data_dir=tmp_path)
    seen: list[str] = []
    manager.bus.subscribe("devices", lambda _t, p: seen.append(p["devices"][-1]["name"]))
    await manager.start()
    try:
        await asyncio.sleep(0.8)
        return len(manager.device_history), seen
    finally:
        await manager.shutdown()


async def test_samples_at_the_interval(tmp_path):
    count, seen = await run_for(False, tmp_path)
    assert count >= 5 and len(seen) >= 4 and "gpu" in seen


async def test_disable_gpu_monitoring_stops_periodic_sampling(tmp_path):
    count, seen = await run_for(True, tmp_path)
    assert count == 1 and seen == []  # only the reading taken at start (placement still reads on demand)
