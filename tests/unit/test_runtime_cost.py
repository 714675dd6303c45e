"""Runtime cost: loaded intervals from lifecycle events (instances, crashes without a stop, open intervals), the
hourly price as recorded, clipping to a range, and apportioning to keys by token share. Figures by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llm_manager.accounting.layer import close_dangling
from llm_manager.accounting.runtime_cost import apportion, clip, loaded_intervals, open_intervals
from llm_manager.accounting.store import UsageStore

T0 = 1_790_000_000.0
GPU = json.dumps({"g": 1000})


def events(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """(ts, model, kind, detail[, price_per_hour[, holdings]]) rows, as the store returns them."""
    full = [(*r, *([None, ""][len(r) - 4:])) for r in rows]
    return pd.DataFrame(full, columns=["ts", "model", "kind", "detail", "price_per_hour", "holdings"]).astype(
        {"price_per_hour": "float64"})


def requests(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """(ts, model, key_id, prompt, completion[, cached[, instance]]) rows."""
    full = [(*r, *([False, ""][len(r) - 5:])) for r in rows]
    df = pd.DataFrame(full, columns=["ts", "model", "key_id", "prompt_tokens", "completion_tokens", "cached",
                                     "instance"])
    df["total_tokens"] = df["prompt_tokens"] + df["completion_tokens"]
    return df


def test_intervals_from_start_to_stop_per_instance() -> None:
    ev = events(
        (T0, "chat", "start", "profile gpu", 2.0, GPU),
        (T0 + 10, "chat", "ready", "in 10.00 s"),
        (T0 + 100, "chat", "start", "instance 1: profile gpu", 2.0, GPU),
        (T0 + 1900, "chat", "crash", "instance 1: exited with code 1"),
        (T0 + 3000, "chat", "evict", "evicted to make room for embed"),  # informational: its stop follows
        (T0 + 3600, "chat", "stop", "evicted to make room for embed"),
    )
    iv = clip(loaded_intervals(ev, alive_until=None), None, None)
    assert iv[["instance", "start", "end", "closed_by"]].values.tolist() == [
        [0, T0, T0 + 3600, "stop"], [1, T0 + 100, T0 + 1900, "crash"]]
    assert iv["profile"].tolist() == ["gpu", "gpu"] and iv["holdings"].tolist() == [{"g": 1000.0}] * 2
    assert iv["runtime_cost"].tolist() == pytest.approx([2.0, 1.0])  # one hour, half an hour at 2/h


def test_a_start_without_an_end_closes_at_the_next_start_or_runs_to_alive_until() -> None:
    ev = events(
        (T0, "chat", "start", "profile gpu", 4.0, GPU),
        (T0 + 900, "chat", "start", "profile gpu", 4.0, GPU),  # the manager died: no stop for the first
        (T0 + 1000, "embed", "start", "profile cpu", 1.0, "{}"),
        (T0 + 1100, "embed", "fail", "did not become healthy"),
    )
    iv = loaded_intervals(ev, alive_until=T0 + 1800)
    assert iv[["model", "start", "end", "closed_by"]].values.tolist() == [
        ["chat", T0, T0 + 900, "next start"], ["chat", T0 + 900, T0 + 1800, "open"],
        ["embed", T0 + 1000, T0 + 1100, "fail"]]
    assert clip(iv, None, None)["runtime_cost"].tolist() == pytest.approx([1.0, 1.0, 100 / 3600])
    unbilled = loaded_intervals(ev, alive_until=None)  # nobody says it is alive: an open interval bills nothing
    assert unbilled.iloc[1]["end"] == T0 + 900
    assert [(i["model"], i["start"]) for i in open_intervals(ev)] == [("chat", T0 + 900)]


def test_clip_to_a_range_and_fallback_for_events_before_v8() -> None:
    ev = events((T0, "chat", "start", "profile gpu"), (T0 + 7200, "chat", "stop", "stop requested"))
    iv = loaded_intervals(ev, None, fallback=lambda model, profile: (3.0 if profile == "gpu" else None, {"g": 5}))
    assert iv.iloc[0]["price_per_hour"] == 3.0 and iv.iloc[0]["holdings"] == {"g": 5}
    part = clip(iv, T0 + 3600, T0 + 5400)  # the middle half hour
    assert (part.iloc[0]["start"], part.iloc[0]["loaded_seconds"], part.iloc[0]["runtime_cost"]) == (
        T0 + 3600, 1800.0, pytest.approx(1.5))
    assert clip(iv, T0 + 7200, T0 + 9000).empty
    no_price = clip(loaded_intervals(ev, None), None, None)
    assert no_price["runtime_cost"].tolist() == [0.0]


def test_apportion_to_keys_by_token_share() -> None:
    iv = clip(loaded_intervals(events((T0, "chat", "start", "profile gpu", 2.0, GPU),
                                      (T0 + 3600, "chat", "stop", "idle"),
                                      (T0 + 4000, "chat", "start", "profile gpu", 2.0, GPU),
                                      (T0 + 5800, "chat", "stop", "idle")), None), None, None)
    req = requests(
        (T0 + 10, "chat", "a", 200, 100),  # 300 tokens
        (T0 + 20, "chat", "b", 50, 50),  # 100 tokens
        (T0 + 30, "chat", "b", 5000, 0, True),  # a cache hit: no share
        (T0 + 40, "chat", "b", 5000, 0, False, "api.example.com"),  # a remote upstream: no share
        (T0 + 50, "other", "b", 1000, 0),  # another model
        (T0 + 3600, "chat", "a", 100, 0),  # at the stop: outside [start, end)
    )
    shares, left = apportion(req, iv, ["runtime_cost"])
    assert shares["runtime_cost"].tolist() == pytest.approx([1.5, 0.5, 0, 0, 0, 0])
    assert left["runtime_cost"].tolist() == pytest.approx([0.0, 1.0])  # the second interval served nothing
    assert shares.index.equals(req.index)


def test_overlapping_instances_each_split_over_the_models_tokens() -> None:
    ev = events((T0, "chat", "start", "profile gpu", 3.6, GPU),
                (T0 + 100, "chat", "start", "instance 1: profile gpu", 3.6, GPU),
                (T0 + 200, "chat", "stop", "x"), (T0 + 200, "chat", "stop", "instance 1: x"))
    iv = clip(loaded_intervals(ev, None), None, None)  # costs 0.2 and 0.1
    req = requests((T0 + 50, "chat", "a", 10, 0), (T0 + 150, "chat", "b", 30, 0, False, "chat@1"))
    shares, left = apportion(req, iv, ["runtime_cost"])
    # instance 0 (0.2) splits over a:10, b:30; instance 1 (0.1) only sees b
    assert shares["runtime_cost"].tolist() == pytest.approx([0.05, 0.15 + 0.1])
    assert float(left.to_numpy().sum()) == 0.0
    assert np.isclose(shares.to_numpy().sum(), iv["runtime_cost"].sum())


def test_a_new_manager_closes_what_the_last_one_left_open_at_its_last_sign_of_life(tmp_path: Path) -> None:
    with UsageStore(f"sqlite:///{tmp_path / 'u.db'}", tmp_path, flush_interval=60) as store:
        store.record_event("chat", "start", "profile gpu", T0, price_per_hour=1.0, holdings={"g": 1000})
        store.record_event("chat", "start", "instance 1: profile gpu", T0 + 5, price_per_hour=1.0)
        store.record_event("embed", "start", "profile cpu", T0, 1.0)
        store.record_event("embed", "stop", "stop requested", T0 + 60)
        store.record_device_sample("g", 1000, 8000, 12.5, None, T0 + 600, power_watts=80.0, device_type="GPU")
        store.flush()
        close_dangling(store)
        ev = store.events_frame()
        crashes = ev[ev["kind"] == "crash"]
        assert crashes[["model", "ts", "detail"]].values.tolist() == [
            ["chat", T0 + 600, "no stop recorded: the manager ended; closed at its last sign of life"],
            ["chat", T0 + 600, "instance 1: no stop recorded: the manager ended; closed at its last sign of life"]]
        assert ev.loc[ev["kind"] == "start", "holdings"].tolist()[0] == GPU
        iv = clip(loaded_intervals(ev, alive_until=T0 + 99999), None, None)  # nothing is open any more
        assert iv["loaded_seconds"].tolist() == [600.0, 60.0, 595.0]
        close_dangling(store)  # idempotent
        assert (store.events_frame()["kind"] == "crash").sum() == 2


def test_sleep_ends_an_interval_and_wake_starts_the_next() -> None:
    ev = events((T0, "chat", "start", "profile gpu", 3.6, GPU),
                (T0 + 100, "chat", "sleep", "idle"),  # the process runs on, its device memory is freed
                (T0 + 400, "chat", "wake", "waking from sleep; profile gpu", 3.6, GPU),
                (T0 + 450, "chat", "ready", "in 50.00 s"),
                (T0 + 500, "chat", "stop", "stop requested"))
    iv = clip(loaded_intervals(ev, None), None, None)
    assert iv[["start", "end", "closed_by", "profile"]].values.tolist() == [
        [T0, T0 + 100, "sleep", "gpu"], [T0 + 400, T0 + 500, "stop", "gpu"]]
    assert iv["runtime_cost"].sum() == pytest.approx(0.2)  # 200 s at 3.6/h
