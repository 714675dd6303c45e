"""GPU time and energy: device time and watt-hours split between the models holding a device by memory share,
idle energy, samples that stop (no invented power), apportioning to keys, the simulated GPU's power draw and the
sampler that keeps power readings. Figures computed by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llm_manager.accounting.energy import breakdown, device_shares
from llm_manager.accounting.layer import _device_sampler
from llm_manager.accounting.runtime_cost import clip, loaded_intervals
from llm_manager.accounting.store import UsageStore
from plugins.devices.simulated import SimulatedGPU

T0 = 1_790_000_000.0

# chat holds g (1000 MB) over [T0, T0+120); embed holds g (3000 MB) and the CPU over [T0+60, T0+180)
EVENTS = pd.DataFrame([
    (T0, "chat", "start", "profile gpu", 1.2, json.dumps({"g": 1000})),
    (T0 + 60, "embed", "start", "profile big", 0.6, json.dumps({"g": 3000, "cpu": 0})),
    (T0 + 120, "chat", "stop", "idle", None, ""),
    (T0 + 180, "embed", "stop", "idle", None, ""),
], columns=["ts", "model", "kind", "detail", "price_per_hour", "holdings"])

# g draws 100 W from T0, 250 W from T0+60, 50 W from T0+120; the last sample stands for at most 90 s (to T0+210)
SAMPLES = pd.DataFrame([
    (T0, "g", 100.0, "GPU"), (T0, "cpu", None, "CPU"),
    (T0 + 60, "g", 250.0, "GPU"), (T0 + 120, "g", 50.0, "GPU"),
], columns=["ts", "device", "power_watts", "device_type"])

# [T0, +60):     chat alone, 100 W          -> chat 60 s, 6000 J
# [+60, +120):   chat 1/4, embed 3/4, 250 W -> chat 15 s, 3750 J; embed 45 s, 11250 J
# [+120, +180):  embed alone, 50 W          -> embed 60 s, 3000 J
# [+180, +210):  nobody, 50 W               -> idle 1500 J
# [+210, +300):  no sample covers it        -> nothing measured
CHAT_S, CHAT_WH = 75.0, (6000 + 3750) / 3600
EMBED_S, EMBED_WH = 105.0, (11250 + 3000) / 3600


def intervals(since: float = T0, until: float = T0 + 300) -> pd.DataFrame:
    return clip(loaded_intervals(EVENTS, None), since, until)


def test_device_time_and_energy_split_by_memory_share() -> None:
    out, devices = device_shares(intervals(), SAMPLES, T0, T0 + 300, max_gap=90)
    shares = out.set_index("model")
    assert shares.loc["chat", "gpu_seconds"] == pytest.approx(CHAT_S)
    assert shares.loc["embed", "gpu_seconds"] == pytest.approx(EMBED_S)  # the CPU's time is not GPU time
    assert shares.loc["chat", "energy_wh"] == pytest.approx(CHAT_WH)
    assert shares.loc["embed", "energy_wh"] == pytest.approx(EMBED_WH)  # the CPU has no power readings
    g = devices.set_index("device").loc["g"]
    assert (g["device_type"], g["held_seconds"], g["samples"]) == ("GPU", 180.0, 3)
    assert g["energy_wh"] == pytest.approx(25500 / 3600) and g["idle_energy_wh"] == pytest.approx(1500 / 3600)
    assert devices.set_index("device").loc["cpu", "energy_wh"] == 0.0


def test_a_range_cut_takes_only_its_part() -> None:
    out, _ = device_shares(intervals(T0 + 90, T0 + 300), SAMPLES, T0 + 90, T0 + 300, max_gap=90)
    chat = out.set_index("model").loc["chat"]
    # [T0+90, T0+120): a quarter of 30 s at 250 W
    assert chat["gpu_seconds"] == pytest.approx(7.5) and chat["energy_wh"] == pytest.approx(250 * 30 / 4 / 3600)


def test_breakdown_by_model_and_key_with_the_unattributed_rest() -> None:
    requests = pd.DataFrame({
        "ts": [T0 + 10, T0 + 100, T0 + 100], "model": ["chat", "chat", "chat"], "key_id": ["a", "b", None],
        "prompt_tokens": [60, 200, 0], "completion_tokens": [40, 100, 0], "cost": [0.001, 0.003, 0.0],
    })
    requests["total_tokens"] = requests["prompt_tokens"] + requests["completion_tokens"]
    f = breakdown(requests, EVENTS, SAMPLES, T0, T0 + 300, alive_until=None, max_gap=90)
    model = f["by_model"].set_index("model")
    assert model.loc["chat", "runtime_cost"] == pytest.approx(1.2 * 120 / 3600)  # 0.04
    assert model.loc["embed", "runtime_cost"] == pytest.approx(0.6 * 120 / 3600)  # 0.02
    assert model.loc["chat", "token_cost"] == pytest.approx(0.004) and model.loc["embed", "requests"] == 0
    assert model.loc["chat", "energy_wh"] == pytest.approx(CHAT_WH)
    key = f["by_key"].set_index("key_id")
    # chat's runtime, GPU time and energy go 1:3 to a (100 tokens) and b (300); embed served no request
    assert key.loc["a", "runtime_cost"] == pytest.approx(0.01) and key.loc["b", "runtime_cost"] == pytest.approx(0.03)
    assert key.loc["a", "gpu_seconds"] == pytest.approx(CHAT_S / 4) and key.loc["b", "energy_wh"] == pytest.approx(
        CHAT_WH * 3 / 4)
    idle = key.loc["(idle)"]
    assert (idle["runtime_cost"], idle["gpu_seconds"], idle["energy_wh"]) == (
        pytest.approx(0.02), pytest.approx(EMBED_S), pytest.approx(EMBED_WH))
    assert f["requests"]["gpu_seconds"].tolist() == pytest.approx([CHAT_S / 4, CHAT_S * 3 / 4, 0.0])
    assert f["intervals"]["unattributed_runtime_cost"].tolist() == pytest.approx([0.0, 0.02])


def test_empty_store_breakdown_has_its_columns() -> None:
    empty = breakdown(pd.DataFrame(columns=["ts", "model", "key_id", "prompt_tokens", "completion_tokens",
                                            "total_tokens", "cost"]),
                      EVENTS.iloc[:0], SAMPLES.iloc[:0], T0, T0 + 60, alive_until=None)
    assert empty["by_model"].empty and empty["by_key"].empty
    assert {"model", "runtime_cost", "gpu_seconds", "energy_wh"} <= set(empty["by_model"].columns)


@pytest.mark.parametrize(("models_mb", "watts"), [(0, 50.0), (2000, 50 + 250 * 0.25), (8000, 300.0),
                                                   (9000, 300.0)])
def test_simulated_gpu_power_follows_the_models_memory(models_mb: int, watts: float) -> None:
    gpu = SimulatedGPU("g", total_memory_mb=8000, used_memory_mb=1000, ledger=lambda _name: models_mb)
    info = gpu.get_devices_info()
    assert info["power_watts"] == watts  # other programs' 1000 MB draw nothing
    assert gpu.get_devices_info() == info  # deterministic


def test_sampler_keeps_power_and_samples_again_when_holders_change(tmp_path: Path) -> None:
    def payload(models: list[dict[str, Any]], watts: float) -> dict[str, Any]:
        return {"devices": [{"name": "g", "device_type": "GPU", "used_memory_mb": 0, "total_memory_mb": 8000,
                             "usage_percentage": 0.0, "power_watts": watts, "models": models}]}

    after: list[int] = []
    with UsageStore(f"sqlite:///{tmp_path / 'u.db'}", tmp_path, flush_interval=60) as store:
        sample = _device_sampler(store, lambda: after.append(1))
        sample("devices", payload([], 50.0))
        sample("devices", payload([], 60.0))  # within 30 s, nothing changed: skipped
        sample("devices", payload([{"model": "chat", "memory_mb": 2000, "state": "ready"}], 112.5))
        store.flush()
        df = store.device_frame()
    assert df["power_watts"].tolist() == [50.0, 112.5] and df["device_type"].tolist() == ["GPU", "GPU"]
    assert len(after) == 2


def test_gpu_hour_budgets_measure_the_store_and_refuse_when_spent(tmp_path: Path) -> None:
    import time

    from llm_manager.accounting.record import UsageRecord
    from llm_manager.accounting.security import Security, period_bounds
    from llm_manager.config.blocks import parse_budgets
    from llm_manager.config.parse import ProgramConfig
    from llm_manager.errors import BudgetExceeded

    start = period_bounds("month", time.time())[0]  # chat holds the GPU for 36 s of this month: 0.01 GPU-hours
    program = ProgramConfig(api_keys=({"key": "sk-a", "name": "a"}, {"key": "sk-b", "name": "b"}), budgets=[
        {"name": "all", "limit": 0.02, "unit": "gpu_hours"},
        {"name": "a", "scope": "key", "key": "a", "limit": 0.007, "unit": "gpu_hours"},  # a's 3/4: 0.0075
        {"name": "b", "scope": "key", "key": "b", "limit": 0.007, "unit": "gpu_hours"}])  # b's 1/4: 0.0025
    with UsageStore(f"sqlite:///{tmp_path / 'u.db'}", tmp_path, flush_interval=60) as store:
        store.record_event("chat", "start", "profile gpu", start, 1.0, {"g": 1000})
        store.record_event("chat", "stop", "idle", start + 36)
        store.record_device_sample("g", 1000, 8000, 12.5, None, start, power_watts=100.0, device_type="GPU")
        for key, tokens in (("cfg:a", 300), ("cfg:b", 100)):
            store.record(UsageRecord(model="chat", endpoint="chat/completions", status=200, ts=start + 10,
                                     key_id=key, prompt_tokens=tokens))
        store.flush()
        security = Security(program, store)
        security.init_budgets()
    used = {b.name: b.used for b in security.budgets}
    assert used == {"all": pytest.approx(0.01), "a": pytest.approx(0.0075), "b": pytest.approx(0.0025)}
    keys = {k.name: k for k in security.keys.values()}
    with pytest.raises(BudgetExceeded, match=r"budget .a. exhausted: 0.0075 of 0.007 \(GPU-hours, monthly\)"):
        security.check_budget(keys["a"], "chat")
    security.check_budget(keys["b"], "chat")  # b is within its budget and the global one
    security.on_usage(UsageRecord(model="chat", endpoint="x", status=200, ts=time.time(), key_id="cfg:b",
                                  prompt_tokens=10**6, cost=99.0))
    assert security.budgets[2].used == pytest.approx(0.0025)  # tokens and cost never count as GPU time
    assert parse_budgets([{"limit": 1, "unit": "gpu_hours"}])[0].unit == "gpu_hours"
