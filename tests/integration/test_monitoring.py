"""The device monitoring loop samples at its interval, not at all with Disable_GPU_monitoring, and feeds metrics."""

from __future__ import annotations

from collections.abc import Callable

from helpers import wait_until_async
from prometheus_client.parser import text_string_to_metric_families

from llm_manager.accounting.metrics import Metrics
from llm_manager.config.parse import parse_config
from llm_manager.runtime.manager import Manager

INTERVAL = 0.1


def config(disable: bool, used_mb: int = 0):
    return parse_config({"program": {"monitor_interval": INTERVAL, "Disable_GPU_monitoring": disable,
                                     "simulated_devices": [{"name": "gpu", "total_memory_mb": 1000,
                                                            "used_memory_mb": used_mb}]}}, ".")


async def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``cond`` on the loop until it holds (the monitor runs on this same loop)."""
    assert await wait_until_async(cond, timeout), "condition not reached in time"


async def test_samples_at_the_interval(tmp_path):
    manager = Manager(config(False), data_dir=tmp_path)
    seen: list[str] = []
    manager.bus.subscribe("devices", lambda _t, p: seen.append(p["devices"][-1]["name"]))
    await manager.start()
    try:
        await wait_until(lambda: len(manager.device_history) >= 5 and len(seen) >= 4)
        stamps = [h["ts"] for h in manager.device_history]
    finally:
        await manager.shutdown()
    assert "gpu" in seen
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # from the first periodic sample on
    assert gaps and min(gaps) >= INTERVAL * 0.9, gaps


async def test_disable_gpu_monitoring_stops_periodic_sampling(tmp_path):
    """Measured against a monitored twin on the same loop: by its 6th sample the other has had as many chances."""
    off = Manager(config(True), data_dir=tmp_path / "off")
    on = Manager(config(False), data_dir=tmp_path / "on")
    seen: list[str] = []
    off.bus.subscribe("devices", lambda _t, p: seen.append(p["devices"][-1]["name"]))
    await off.start()
    await on.start()
    try:
        await wait_until(lambda: len(on.device_history) >= 6)
        # only the reading taken at start (placement still reads on demand)
        assert len(off.device_history) == 1 and seen == []
    finally:
        await on.shutdown()
        await off.shutdown()


async def test_device_memory_metrics_are_in_bytes(tmp_path):
    manager = Manager(config(True, used_mb=250), data_dir=tmp_path)
    metrics = Metrics(manager)
    await manager.start()
    try:
        families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    finally:
        await manager.shutdown()
    value = {name: next(s.value for s in families[name].samples if s.labels["device"] == "gpu")
             for name in ("llm_device_memory_total_bytes", "llm_device_memory_used_bytes")}
    assert value == {"llm_device_memory_total_bytes": 1000 * 1024 * 1024,
                     "llm_device_memory_used_bytes": 250 * 1024 * 1024}
    assert not [n for n in families if "_mb" in n or n.endswith("_ms")]
