"""Device plugins (NVML GPUs with a fake pynvml, the CPU) and the config device-name rule."""

from __future__ import annotations

import sys
import types
from collections import namedtuple
from typing import Any

import pytest

from llm_manager.runtime.device_match import name_matches, resolve_devices
from plugins.devices import nvml_gpu
from plugins.devices.Base_Class import INFO_KEYS, DevicePlugin
from plugins.devices.cpu import CPUDevice
from plugins.devices.nvml_gpu import NvmlGPU, nvml_status

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_nvml():
    """Each test starts with NVML un-initialised, so it sees the pynvml the test injected."""
    nvml_gpu._reset_for_tests()
    yield
    nvml_gpu._reset_for_tests()


# ---------------------------------------------------------------- name rule

@pytest.mark.parametrize(("config", "candidate", "expected"), [
    ("rtx 4060", "NVIDIA GeForce RTX 4060 Laptop GPU", True),
    ("RTX4060", "NVIDIA GeForce RTX 4060 Laptop GPU", False),  # one word, not a substring
    ("v100", "Tesla V100-SXM2-16GB", True),
    ("V100 16gb", "Tesla V100-SXM2-16GB", True),
    ("4060", "NVIDIA GeForce RTX 4060", True),
    ("rtx 4090", "NVIDIA GeForce RTX 4060", False),
    ("geforce laptop", "NVIDIA GeForce RTX 4060 Laptop GPU", True),
    ("  Rtx   4060  ", "NVIDIA GeForce RTX 4060", True),
    ("a100", "Tesla V100-SXM2-16GB", False),
    ("", "NVIDIA GeForce RTX 4060", False),
    ("   ", "anything", False),
    ("cpu", "cpu", True),
])
def test_name_matches(config: str, candidate: str, expected: bool) -> None:
    assert name_matches(config, candidate) is expected


class Dev(DevicePlugin):
    """A device stub with NVML-like match names."""

    def __init__(self, name: str, index: int | None = None, uuid: str | None = None):
        super().__init__(name)
        self.index, self.uuid = index, uuid

    def match_names(self) -> list[str]:
        return [n for n in (self.device_name, None if self.index is None else str(self.index), self.uuid) if n]

    def is_online(self) -> bool:
        return True

    def get_devices_info(self) -> dict[str, Any]:
        return {}


def two_3090s() -> list[DevicePlugin]:
    return [Dev("NVIDIA GeForce RTX 3090", 0, "GPU-aaaa"), Dev("NVIDIA GeForce RTX 3090", 1, "GPU-bbbb")]


def test_resolve_word_rule_and_unmatched() -> None:
    laptop, tesla, cpu = Dev("NVIDIA GeForce RTX 4060 Laptop GPU", 0, "GPU-1"), Dev("Tesla V100-SXM2-16GB", 1, "GPU-2"), Dev("cpu")
    got = resolve_devices(["rtx 4060", "v100", "CPU", "rtx 4090"], [laptop, tesla, cpu], {})
    assert got == {"rtx 4060": laptop, "v100": tesla, "CPU": cpu, "rtx 4090": None}


def test_resolve_explicit_index_picks_second_identical_card() -> None:
    devs = two_3090s()
    got = resolve_devices(["rtx 3090"], devs, {"rtx 3090": "1"})
    assert got["rtx 3090"] is devs[1]


def test_resolve_explicit_uuid_picks_second_identical_card() -> None:
    devs = two_3090s()
    got = resolve_devices(["big card"], devs, {"big card": "GPU-BBBB"})  # UUID case does not matter
    assert got["big card"] is devs[1]


def test_resolve_explicit_pin_to_missing_card_stays_unresolved() -> None:
    got = resolve_devices(["rtx 3090"], two_3090s(), {"rtx 3090": "7"})
    assert got["rtx 3090"] is None


def test_resolve_identical_cards_go_to_different_config_names() -> None:
    devs = two_3090s()
    got = resolve_devices(["rtx 3090", "3090"], devs, {})
    assert got["rtx 3090"] is devs[0] and got["3090"] is devs[1]


def test_resolve_explicit_claims_before_loose_names() -> None:
    devs = two_3090s()
    got = resolve_devices(["rtx 3090", "pinned"], devs, {"pinned": "0"})
    assert got["pinned"] is devs[0] and got["rtx 3090"] is devs[1]


def test_resolve_all_claimed_shares_first_match() -> None:
    devs = [Dev("NVIDIA GeForce RTX 4060", 0, "GPU-x")]
    got = resolve_devices(["rtx 4060", "4060"], devs, {})
    assert got["rtx 4060"] is devs[0] and got["4060"] is devs[0]


def test_resolve_exact_name_beats_word_rule() -> None:
    ti, plain = Dev("NVIDIA GeForce RTX 4060 Ti", 0, "GPU-t"), Dev("NVIDIA GeForce RTX 4060", 1, "GPU-p")
    got = resolve_devices(["nvidia geforce rtx 4060"], [ti, plain], {})
    assert got["nvidia geforce rtx 4060"] is plain


def test_resolve_index_name_is_exact_not_substring() -> None:
    """Config name "0" means GPU 0, not every card whose product name contains a zero."""
    tesla, other = Dev("Tesla V100-SXM2-16GB", 1, "GPU-2"), Dev("NVIDIA GeForce RTX 4060", 0, "GPU-1")
    assert resolve_devices(["0"], [tesla, other], {})["0"] is other


# ---------------------------------------------------------------- fake pynvml

Memory = namedtuple("Memory", "total free used")
Util = namedtuple("Util", "gpu memory")
Proc = namedtuple("Proc", "pid usedGpuMemory")


def make_fake_nvml(init_error: bool = False) -> types.ModuleType:
    """A minimal pynvml: two GPUs; GPU 1 does not support power readings; ``fake.lost`` holds indices
    whose handle query fails (GPU fell off the bus)."""
    fake = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own spelling
        pass

    class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
        pass

    gpus = [
        {"name": b"NVIDIA GeForce RTX 4060 Laptop GPU", "uuid": "GPU-4060-aaaa", "total": 8188, "used": 1024,
         "util": Util(37, 12), "temp": 51, "power": 23456, "limit": 115000,
         "compute": [Proc(1234, 900 * MB)], "graphics": [Proc(1234, 900 * MB), Proc(77, None)]},
        {"name": "Tesla V100-SXM2-16GB", "uuid": "GPU-v100-bbbb", "total": 16384, "used": 0,
         "util": Util(0, 0), "temp": 33, "power": None, "limit": None, "compute": [], "graphics": None},
    ]
    fake.NVMLError = NVMLError
    fake.NVMLError_NotSupported = NVMLError_NotSupported
    fake.NVML_TEMPERATURE_GPU = 0
    fake.lost = set()
    fake.init_calls = 0

    def nvmlInit() -> None:
        fake.init_calls += 1
        if init_error:
            raise NVMLError("Driver Not Loaded")

    def handle(index: int) -> dict[str, Any]:
        if index in fake.lost:
            raise NVMLError_GpuIsLost("GPU is lost")
        if not 0 <= index < len(gpus):
            raise NVMLError("Invalid Argument")
        return gpus[index]

    def supported(value: Any) -> Any:
        if value is None:
            raise NVMLError_NotSupported("Not Supported")
        return value

    fake.nvmlInit = nvmlInit
    fake.nvmlSystemGetDriverVersion = lambda: b"550.54.14"
    fake.nvmlDeviceGetCount = lambda: len(gpus)
    fake.nvmlDeviceGetHandleByIndex = handle
    fake.nvmlDeviceGetName = lambda h: h["name"]
    fake.nvmlDeviceGetUUID = lambda h: h["uuid"]
    fake.nvmlDeviceGetMemoryInfo = lambda h: Memory(h["total"] * MB, (h["total"] - h["used"]) * MB, h["used"] * MB)
    fake.nvmlDeviceGetUtilizationRates = lambda h: h["util"]
    fake.nvmlDeviceGetTemperature = lambda h, sensor: h["temp"]
    fake.nvmlDeviceGetPowerUsage = lambda h: supported(h["power"])
    fake.nvmlDeviceGetEnforcedPowerLimit = lambda h: supported(h["limit"])
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: supported(h["compute"])
    fake.nvmlDeviceGetGraphicsRunningProcesses = lambda h: supported(h["graphics"])
    return fake


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = make_fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def discover() -> list[NvmlGPU]:
    devs = NvmlGPU.discover({"program": None, "ledger": lambda _n: 0})
    assert all(isinstance(d, NvmlGPU) for d in devs)
    return devs  # type: ignore[return-value]


def test_discover_finds_both_gpus(fake_nvml: types.ModuleType) -> None:
    laptop, tesla = discover()
    assert laptop.device_name == "NVIDIA GeForce RTX 4060 Laptop GPU"  # bytes decoded
    assert tesla.device_name == "Tesla V100-SXM2-16GB"
    assert laptop.match_names() == ["NVIDIA GeForce RTX 4060 Laptop GPU", "0", "GPU-4060-aaaa"]
    assert tesla.match_names() == ["Tesla V100-SXM2-16GB", "1", "GPU-v100-bbbb"]
    assert laptop.is_online() and tesla.is_online() and laptop.offline_reason == ""
    assert nvml_status() == {"available": True, "reason": "", "driver_version": "550.54.14", "device_count": 2}


def test_nvml_init_once_per_process(fake_nvml: types.ModuleType) -> None:
    discover()
    discover()
    nvml_status()
    assert fake_nvml.init_calls == 1


def test_readings_in_mb(fake_nvml: types.ModuleType) -> None:
    laptop, tesla = discover()
    info = laptop.get_devices_info()
    assert set(INFO_KEYS) <= set(info)
    assert info["device_type"] == "GPU" and info["memory_type"] == "VRAM"
    assert (info["total_memory_mb"], info["used_memory_mb"], info["available_memory_mb"]) == (8188, 1024, 7164)
    assert info["usage_percentage"] == 37 and info["memory_utilization_percentage"] == 12
    assert info["temperature_celsius"] == 51
    assert info["power_watts"] == pytest.approx(23.5, abs=0.05)
    assert info["power_limit_watts"] == 115
    assert (info["index"], info["uuid"]) == (0, "GPU-4060-aaaa")

    info = tesla.get_devices_info()
    assert (info["total_memory_mb"], info["used_memory_mb"], info["available_memory_mb"]) == (16384, 0, 16384)
    assert info["power_watts"] is None and info["power_limit_watts"] is None  # NotSupported -> None
    assert info["temperature_celsius"] == 33


def test_processes(fake_nvml: types.ModuleType) -> None:
    laptop, tesla = discover()
    procs = sorted(laptop.get_processes(), key=lambda p: p["pid"])
    assert procs == [{"pid": 77, "used_memory_mb": None}, {"pid": 1234, "used_memory_mb": 900}]
    assert tesla.get_processes() == []  # graphics query unsupported, compute empty


def test_lost_gpu_goes_offline_and_back(fake_nvml: types.ModuleType) -> None:
    laptop, tesla = discover()
    fake_nvml.lost.add(1)
    assert laptop.is_online()
    assert not tesla.is_online()
    assert "GPU 1" in tesla.offline_reason and "lost" in tesla.offline_reason
    info = tesla.get_devices_info()  # no exception; nothing can be placed on it
    assert info["available_memory_mb"] == 0 and info["error"]
    assert tesla.get_processes() == []
    fake_nvml.lost.clear()
    assert tesla.is_online() and tesla.offline_reason == ""


def test_discover_skips_unreadable_gpu(fake_nvml: types.ModuleType) -> None:
    fake_nvml.lost.add(0)
    devs = discover()
    assert [d.device_name for d in devs] == ["Tesla V100-SXM2-16GB"]


def test_discover_lists_gpus_with_monitoring_disabled(fake_nvml: types.ModuleType) -> None:
    program = types.SimpleNamespace(disable_gpu_monitoring=True)
    assert len(NvmlGPU.discover({"program": program})) == 2


# ---------------------------------------------------------------- without NVML

def test_nvml_init_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(init_error=True))
    assert discover() == []
    status = nvml_status()
    assert status["available"] is False and "Driver Not Loaded" in status["reason"]
    assert status["device_count"] == 0 and status["driver_version"] is None


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert discover() == []
    status = nvml_status()
    assert status["available"] is False and "not installed" in status["reason"]


def test_real_pynvml_degrades_cleanly() -> None:
    """On a machine without a driver, NVML reports why; with one, the devices are readable."""
    pytest.importorskip("pynvml")
    devs = discover()
    status = nvml_status()
    assert set(status) == {"available", "reason", "driver_version", "device_count"}
    if not status["available"]:
        assert devs == [] and status["reason"]
        return
    assert len(devs) == status["device_count"]
    for dev in devs:
        assert dev.is_online()
        info = dev.get_devices_info()
        assert info["total_memory_mb"] > 0
        assert info["used_memory_mb"] + info["available_memory_mb"] <= info["total_memory_mb"] + 1
        assert isinstance(dev.get_processes(), list)


# ---------------------------------------------------------------- CPU

def test_cpu_device_readings() -> None:
    (cpu,) = CPUDevice.discover({})
    assert cpu.device_name == "cpu" and cpu.is_online() and cpu.match_names() == ["cpu"]
    info = cpu.get_devices_info()
    assert set(INFO_KEYS) <= set(info)
    assert info["device_type"] == "CPU" and info["memory_type"] == "RAM"
    assert info["total_memory_mb"] > 0
    assert 0 <= info["available_memory_mb"] <= info["total_memory_mb"]
    assert info["used_memory_mb"] + info["available_memory_mb"] == info["total_memory_mb"]
    assert 0.0 <= info["usage_percentage"] <= 100.0
    assert info["temperature_celsius"] is None or -50 < info["temperature_celsius"] < 150
    assert info["cpu_count"] >= 1
    load = info["load_average"]
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
