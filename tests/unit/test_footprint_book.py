"""Learned memory footprints: measured per process group, remembered per model and profile, max(declared, learned)."""

from __future__ import annotations

import os
from pathlib import Path

from llm_manager.config.parse import ModelConfig, Profile
from llm_manager.runtime.footprints import FootprintBook, measure, over_declared

PROFILE = Profile("gpu", ("gpu",), {"gpu": 4000})


def test_measure_sums_the_processes_of_the_group_and_skips_devices_that_cannot_tell() -> None:
    me = os.getpid()
    group = os.getpgid(me)
    readings = [
        {"name": "GPU 0", "online": True, "processes": [{"pid": me, "used_memory_mb": 3000},
                                                       {"pid": 1, "used_memory_mb": 9999}]},
        {"name": "GPU 1", "online": True, "processes": [{"pid": me, "used_memory_mb": None}]},
        {"name": "CPU", "online": True},
    ]
    devices = {"gpu0": "GPU 0", "gpu1": "GPU 1", "cpu": "CPU", "gone": None}
    assert measure(group, devices, readings) == {"gpu0": 3000}
    assert measure(group + 10_000_000, devices, readings) == {}


def test_the_book_reserves_the_larger_and_remembers_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "footprints.json"
    book = FootprintBook(path)
    assert book.need("m", PROFILE) == {"gpu": 4000} and book.effective("m", PROFILE) is PROFILE
    assert book.record("m", "gpu", {"gpu": 7000})
    assert not book.record("m", "gpu", {"gpu": 7050})  # noise: neither saved nor announced
    assert book.need("m", PROFILE) == {"gpu": 7000} and book.effective("m", PROFILE).memory_mb == {"gpu": 7000}
    assert book.need("m", Profile("gpu", ("gpu",), {"gpu": 9000})) == {"gpu": 9000}  # declared can be larger
    again = FootprintBook(path)
    assert again.get("m", "gpu") == {"gpu": 7000} and again.get("m", "cpu") is None
    path.write_text("{not json")
    assert FootprintBook(path).learned == {}  # a damaged file: learning starts over


def test_fields_show_declared_and_measured_per_profile() -> None:
    book = FootprintBook(None)
    model = ModelConfig("m", "Chat", 9000, (PROFILE, Profile("cpu", ("cpu",), {"cpu": 8000})))
    fields = book.fields(model, None)
    assert fields["memory_profile"] == "gpu" and fields["memory_declared_mb"] == {"gpu": 4000}
    assert fields["memory_measured_mb"] is None
    book.record("m", "cpu", {"cpu": 8100})
    fields = book.fields(model, "cpu")
    assert fields["memory_measured_mb"] == {"cpu": 8100}
    assert fields["memory_profiles"]["gpu"] == {"memory_declared_mb": {"gpu": 4000}, "memory_measured_mb": None}


def test_over_declared_warns_past_ten_percent() -> None:
    assert over_declared({"gpu": 4000}, {"gpu": 4400}) == {}
    assert over_declared({"gpu": 4000}, {"gpu": 4401}) == {"gpu": (4401, 4000)}
    assert over_declared({}, {"gpu": 1}) == {"gpu": (1, 0)}
