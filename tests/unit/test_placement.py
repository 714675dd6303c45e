"""Placement: profile order, reservations, LRU eviction of idle models only, and reasons when nothing fits."""

from __future__ import annotations

from llm_manager.config.parse import Profile
from llm_manager.runtime.placement import DeviceState, Holding, effective_free, plan


def prof(name: str, **mem: int) -> Profile:
    mem = {k.replace("_", " "): v for k, v in mem.items()}
    return Profile(name, tuple(mem), mem, command=("x",))


def devs(**free: int) -> dict[str, DeviceState]:
    return {k.replace("_", " "): DeviceState(k.replace("_", " "), True, v, 24000) for k, v in free.items()}


BIG = prof("both", rtx_4060=6000, v100=16000)
SMALL = prof("small", rtx_4060=5000)


def test_first_profile_that_fits_wins():
    p = plan("m", [BIG, SMALL], devs(rtx_4060=8000, v100=16000), [])
    assert (p.fits, p.profile, p.evict) == (True, "both", ())


def test_falls_back_to_next_profile_in_order():
    p = plan("m", [BIG, SMALL], devs(rtx_4060=8000, v100=10000), [])
    assert (p.fits, p.profile) == (True, "small")
    assert p.devices[0].free_after_mb == 3000


def test_exact_fit_is_a_fit():
    assert plan("m", [SMALL], devs(rtx_4060=5000), []).fits
    assert not plan("m", [SMALL], devs(rtx_4060=4999), []).fits


def test_offline_device_makes_profile_unavailable():
    d = devs(rtx_4060=8000, v100=16000)
    d["v100"] = DeviceState("v100", False, 16000, 16000, "fell off the bus")
    p = plan("m", [BIG, SMALL], d, [])
    assert p.profile == "small"
    p2 = plan("m", [BIG], d, [])
    assert not p2.fits and "v100 offline (fell off the bus)" in p2.reason


def test_missing_device_is_reported():
    p = plan("m", [BIG], devs(rtx_4060=8000), [])
    assert not p.fits and "device v100 not found" in p.reason


def test_starting_models_reserve_memory():
    starting = Holding("other", {"rtx 4060": 4000}, "starting")
    assert effective_free(devs(rtx_4060=8000), [starting]) == {"rtx 4060": 4000}
    p = plan("m", [SMALL], devs(rtx_4060=8000), [starting])
    assert not p.fits  # 8000 reported free, but 4000 are promised to the starting model
    assert "needs 5000 MB, 4000 MB free" in p.reason and "other (4000 MB, starting)" in p.reason


def test_ready_models_are_already_in_the_reading():
    ready = Holding("other", {"rtx 4060": 4000}, "ready", last_used=1)
    p = plan("m", [SMALL], devs(rtx_4060=6000), [ready])
    assert p.fits and p.evict == ()


def test_evicts_least_recently_used_idle_model_only_as_needed():
    a = Holding("a", {"rtx 4060": 3000}, "ready", last_used=100)
    b = Holding("b", {"rtx 4060": 3000}, "ready", last_used=50)  # older: goes first
    c = Holding("c", {"rtx 4060": 3000}, "ready", last_used=10)
    p = plan("m", [SMALL], devs(rtx_4060=2000), [a, b, c])
    # needs 3000 more: evicting c (the least recently used) is enough
    assert p.fits and p.evict == ("c",)
    assert p.devices[0].free_after_mb == 2000 + 3000 - 5000
    p2 = plan("m", [prof("s", rtx_4060=7500)], devs(rtx_4060=2000), [a, b, c])
    assert p2.evict == ("c", "b") and p2.devices[0].free_after_mb == 2000 + 6000 - 7500


def test_never_evicts_busy_or_starting_models():
    busy = Holding("busy", {"rtx 4060": 6000}, "ready", busy=True, last_used=1)
    starting = Holding("st", {"rtx 4060": 1000}, "starting")
    p = plan("m", [SMALL], devs(rtx_4060=3000), [busy, starting])
    assert not p.fits
    assert "busy (6000 MB, busy)" in p.reason


def test_eviction_skips_models_on_other_devices():
    other = Holding("other", {"v100": 16000}, "ready", last_used=1)
    mine = Holding("mine", {"rtx 4060": 4000}, "ready", last_used=5)
    p = plan("m", [SMALL], devs(rtx_4060=2000, v100=0), [other, mine])
    assert p.evict == ("mine",)


def test_prefers_first_profile_fitting_without_eviction_over_earlier_with_eviction():
    idle = Holding("idle", {"v100": 16000}, "ready", last_used=1)
    p = plan("m", [BIG, SMALL], devs(rtx_4060=8000, v100=0), [idle])
    assert (p.profile, p.evict) == ("small", ())


def test_undoes_unneeded_evictions():
    small_old = Holding("small_old", {"rtx 4060": 1000}, "ready", last_used=1)
    big_newer = Holding("big_newer", {"rtx 4060": 6000}, "ready", last_used=2)
    p = plan("m", [SMALL], devs(rtx_4060=0), [small_old, big_newer])
    # LRU takes small_old first (not enough), then big_newer; small_old turns out unnecessary
    assert p.evict == ("big_newer",)


def test_a_ready_model_is_reported_where_it_runs_counting_its_own_memory_as_free():
    me = Holding("m", {"rtx 4060": 5000}, "ready", last_used=9, profile="small")
    idle = Holding("idle", {"rtx 4060": 3000}, "ready", last_used=1)
    # 2000 MB reported free: the reading already includes both ready models
    p = plan("m", [BIG, SMALL], devs(rtx_4060=2000, v100=16000), [me, idle])
    assert (p.fits, p.running, p.profile, p.evict) == (True, "ready", "small", ())
    assert p.reason.startswith("already ready with profile small on rtx 4060")
    (d,) = p.devices
    assert (d.name, d.needed_mb, d.free_before_mb, d.free_after_mb) == ("rtx 4060", 5000, 7000, 2000)
    assert "m (5000 MB, ready)" in d.holders and "idle (3000 MB, ready)" in d.holders


def test_a_starting_model_is_running_and_its_reservation_counted_once():
    me = Holding("m", {"rtx 4060": 5000}, "starting", profile="small")
    p = plan("m", [SMALL], devs(rtx_4060=8000), [me])
    assert (p.running, p.profile, p.evict) == ("starting", "small", ())
    # a starting model's memory is not in the reading yet: 8000 free with it, 3000 once it has loaded
    assert (p.devices[0].free_before_mb, p.devices[0].free_after_mb) == (8000, 3000)
    assert p.to_dict()["running"] == "starting"


def test_a_stopped_model_is_planned_not_running():
    assert plan("m", [SMALL], devs(rtx_4060=5000), []).to_dict()["running"] is None


def test_no_profiles_and_plan_dict():
    p = plan("m", [], {}, [])
    assert not p.fits
    d = plan("m", [SMALL], devs(rtx_4060=9000), []).to_dict()
    assert d["devices"][0] == {"name": "rtx 4060", "needed_mb": 5000, "free_before_mb": 9000, "free_after_mb": 4000,
                               "holders": [], "online": True}
