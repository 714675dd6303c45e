"""Runtime cost in a cluster: loaded intervals are per node (two managers on one database each run their own
``chat``), rows with no node are a single manager's from before v10, and an interval's cost goes only to the
requests its node served. Figures by hand."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from llm_manager.accounting.runtime_cost import apportion, clip, loaded_intervals, open_intervals

T0 = 1_790_000_000.0
GPU = json.dumps({"gpu0": 1000})


def events(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """(ts, node, model, kind, detail, price_per_hour) rows, as the store returns them."""
    df = pd.DataFrame(rows, columns=["ts", "node", "model", "kind", "detail", "price_per_hour"])
    return df.assign(holdings=GPU).astype({"price_per_hour": "float64"})


def requests(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """(ts, node, model, key_id, prompt, completion) rows."""
    df = pd.DataFrame(rows, columns=["ts", "node", "model", "key_id", "prompt_tokens", "completion_tokens"])
    return df.assign(total_tokens=df["prompt_tokens"] + df["completion_tokens"], cached=False, instance="")


EVENTS = events(
    (T0 - 2000, "", "chat", "start", "profile gpu", 3.6),  # one manager, before v10: no node
    (T0 - 1000, "", "chat", "stop", "idle", None),
    (T0 - 500, "", "embed", "start", "profile gpu", 3.6),  # left open by the old manager...
    (T0, "alpha", "embed", "crash", "no stop recorded: the manager ended", None),  # ...closed by its successor
    (T0, "alpha", "chat", "start", "profile gpu", 3.6),
    (T0 + 500, "beta", "chat", "start", "profile gpu", 7.2),  # the same name on another node: not a "next start"
    (T0 + 1000, "alpha", "chat", "stop", "idle", None),  # ends alpha's only
    (T0 + 1500, "beta", "chat", "stop", "idle", None),
    (T0 + 2000, "beta", "chat", "start", "instance 1: profile gpu", 7.2),  # still open
)


def test_intervals_are_kept_apart_by_node() -> None:
    iv = clip(loaded_intervals(EVENTS, alive_until=T0 + 2500), None, None)
    got = iv[["node", "model", "instance", "start", "end", "closed_by"]].values.tolist()
    assert got == [["", "chat", 0, T0 - 2000, T0 - 1000, "stop"],
                   ["", "embed", 0, T0 - 500, T0, "crash"],
                   ["alpha", "chat", 0, T0, T0 + 1000, "stop"],
                   ["beta", "chat", 0, T0 + 500, T0 + 1500, "stop"],
                   ["beta", "chat", 1, T0 + 2000, T0 + 2500, "open"]]
    # 1000 s at 3.6/h, 500 s at 3.6/h, 1000 s at 3.6/h, 1000 s at 7.2/h, 500 s at 7.2/h
    assert iv["runtime_cost"].tolist() == pytest.approx([1.0, 0.5, 1.0, 2.0, 1.0])
    assert [(i["node"], i["model"], i["instance"]) for i in open_intervals(EVENTS)] == [("beta", "chat", 1)]


def test_same_model_on_two_nodes_would_merge_without_the_node() -> None:
    merged = clip(loaded_intervals(EVENTS.drop(columns=["node"]), alive_until=T0 + 2500), None, None)
    chat = merged[merged["model"] == "chat"]
    # without nodes beta's start "restarts" alpha's chat and alpha's stop ends beta's: 500 s + 500 s, not 2000 s
    assert chat["loaded_seconds"].sum() == pytest.approx(1000 + 500 + 500 + 500)
    apart = clip(loaded_intervals(EVENTS, alive_until=T0 + 2500), None, None)
    assert apart[apart["model"] == "chat"]["loaded_seconds"].sum() == pytest.approx(1000 + 1000 + 1000 + 500)


def test_an_intervals_cost_goes_to_its_nodes_requests_only() -> None:
    iv = clip(loaded_intervals(EVENTS, alive_until=T0 + 2500), None, None)
    req = requests(
        (T0 - 1500, "", "chat", "old", 2, 3),  # the pre-v10 interval's only row: all of its 1.0
        (T0 + 100, "alpha", "chat", "a", 5, 5),  # alpha's interval (1.0) by tokens: 10 of 40
        (T0 + 600, "beta", "chat", "b", 10, 10),  # inside alpha's interval in time, but beta served it: beta's 2.0
        (T0 + 900, "alpha", "chat", "a", 10, 20),  # 30 of 40
        (T0 + 2100, "alpha", "chat", "a", 1, 1),  # alpha had no chat loaded then: beta's open interval is not its
    )
    shares, left = apportion(req, iv, ["runtime_cost"])
    assert shares["runtime_cost"].tolist() == pytest.approx([1.0, 0.25, 2.0, 0.75, 0.0])
    # unattributed: the embed interval (no requests) and beta's instance 1 (no beta request while it was loaded)
    assert left["runtime_cost"].tolist() == pytest.approx([0.0, 0.5, 0.0, 0.0, 1.0])


def test_frames_without_a_node_column_are_one_node() -> None:
    """Callers that build frames themselves (older stores, tests) keep working: everything is node ""."""
    ev = EVENTS[EVENTS["node"] == ""].drop(columns=["node"])
    iv = clip(loaded_intervals(ev, alive_until=None), None, None)
    assert iv[["node", "model", "start", "end"]].values.tolist() == [["", "chat", T0 - 2000, T0 - 1000]]
    req = requests((T0 - 1500, "", "chat", "old", 2, 3)).drop(columns=["node"])
    shares, _ = apportion(req, iv, ["runtime_cost"])
    assert shares["runtime_cost"].tolist() == pytest.approx([1.0])


def test_two_nodes_gpu0_are_two_devices() -> None:
    """alpha's chat holds alpha's gpu0 (100 W) and beta's chat beta's gpu0 (300 W), both for 100 s: each gets its
    own device's whole time and energy, not half of a merged one."""
    from llm_manager.accounting.energy import device_shares

    ev = events((T0, "alpha", "chat", "start", "profile gpu", 3.6), (T0, "beta", "chat", "start", "profile gpu", 3.6),
                (T0 + 100, "alpha", "chat", "stop", "idle", None), (T0 + 100, "beta", "chat", "stop", "idle", None))
    samples = pd.DataFrame([(T0, "alpha", "gpu0", 100.0, "GPU"), (T0, "beta", "gpu0", 300.0, "GPU")],
                           columns=["ts", "node", "device", "power_watts", "device_type"])
    out, devices = device_shares(clip(loaded_intervals(ev, None), None, None), samples, T0, T0 + 100, max_gap=90)
    by_node = out.set_index("node")
    assert by_node["gpu_seconds"].to_dict() == pytest.approx({"alpha": 100.0, "beta": 100.0})
    # 90 s covered by each node's one sample (max_gap): 100 W x 90 s and 300 W x 90 s
    assert by_node["energy_wh"].to_dict() == pytest.approx({"alpha": 9000 / 3600, "beta": 27000 / 3600})
    assert devices[["node", "device", "held_seconds"]].values.tolist() == [["alpha", "gpu0", 100.0],
                                                                           ["beta", "gpu0", 100.0]]
