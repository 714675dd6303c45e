"""Runtime cost: the time a model was loaded, from its lifecycle events, billed at its ``price_per_hour``.

A loaded interval runs from a ``start`` or ``wake`` event (memory is held from the launch on) to the next ``stop``,
``idle_stop``, ``crash``, ``fail`` or ``sleep`` of the same model and instance (``evict`` is followed by its ``stop``;
a sleeping process has freed its device memory). Intervals are per node, model and instance: several managers
sharing one database each run their own processes, so two nodes' ``chat`` never merge (the ``node`` column of v10;
events with no node are those a single manager wrote before, and the first node whose events follow closes what
they left open); the instance is the one the event detail names (``instance N: ...``; none means instance 0).

An interval with no end event:

* closed at the **next start** of the same model and instance (the manager died and a later one started it again);
* else still **open**: it counts up to ``alive_until``, which the caller sets to *now* for a running manager and
  to the store's **last sign of life** (its newest request, event or device sample) when the store is read alone.
  A manager that starts closes the intervals its predecessor left open at that predecessor's last sign of life
  (``Accounting`` writes a ``crash`` event there), so a crash never bills until the next start, let alone forever.

The hourly price is the one the start event recorded (the profile's, else the model's, as billed then); events
from before schema v8 fall back to the current config. :func:`apportion` splits any per-interval amount over the
requests the model served on the interval's node in the interval, by their share of its tokens (cache hits and
remote upstreams' rows take no share); an interval with no tokens stays unattributed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["END_KINDS", "START_KINDS", "INTERVAL_COLUMNS", "Fallback", "apportion", "clip", "loaded_intervals", "open_intervals",
           "profile_of"]

START_KINDS = frozenset({"start", "wake"})
END_KINDS = frozenset({"stop", "idle_stop", "crash", "fail", "sleep"})
INTERVAL_COLUMNS = ("node", "model", "instance", "profile", "start", "end", "closed_by", "price_per_hour", "holdings")
# (model, profile) -> (price_per_hour, {device: MB}) from the current config, for events recorded before v8
Fallback = Callable[[str, str], tuple[float | None, dict[str, float]]]

_INSTANCE = re.compile(r"\binstance (\d+)\b")
_PROFILE = re.compile(r"\bprofile ([^\s;,]+)")


def _instance(detail: str) -> int:
    m = _INSTANCE.search(detail or "")
    return int(m.group(1)) if m else 0


def profile_of(detail: str) -> str:
    """The profile a start event's detail names (``profile X``), else ""."""
    m = _PROFILE.search(detail or "")
    return m.group(1) if m else ""


def _holdings(raw: Any) -> dict[str, float] | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return {str(k): float(v) for k, v in value.items()} if isinstance(value, dict) else None


Key = tuple[str, str, int]  # (node, model, instance)


def _open_key(open_: dict[Key, dict[str, Any]], key: Key) -> Key | None:
    """The open interval an event of ``key`` ends: its node's own, else one a pre-v10 event (no node) left open."""
    if key in open_:
        return key
    legacy = ("", key[1], key[2])
    return legacy if legacy in open_ else None


def _walk(events: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[Key, dict[str, Any]]]:
    """Closed intervals and those still open, by (node, model, instance), from events sorted by ts."""
    closed: list[dict[str, Any]] = []
    open_: dict[Key, dict[str, Any]] = {}
    cols = [events[c].tolist() if c in events.columns else [None] * len(events)
            for c in ("ts", "node", "model", "kind", "detail", "price_per_hour", "holdings")]
    for ts, node, model, kind, detail, price, holdings in zip(*cols, strict=True):
        key = (str(node or ""), str(model), _instance(detail or ""))
        if kind in START_KINDS:
            ended = _open_key(open_, key)
            if ended is not None:
                closed.append({**open_.pop(ended), "end": float(ts), "closed_by": "next start"})
            open_[key] = {"node": key[0], "model": key[1], "instance": key[2], "profile": profile_of(detail or ""),
                          "start": float(ts), "price_per_hour": None if price is None or price != price else price,
                          "holdings": _holdings(holdings)}
        elif kind in END_KINDS and (ended := _open_key(open_, key)) is not None:
            closed.append({**open_.pop(ended), "end": float(ts), "closed_by": str(kind)})
    return closed, open_


def open_intervals(events: pd.DataFrame) -> list[dict[str, Any]]:
    """The intervals an events frame leaves open (no end event yet): what a starting manager closes."""
    return list(_walk(events.sort_values("ts", kind="stable") if len(events) else events)[1].values())


def loaded_intervals(events: pd.DataFrame, alive_until: float | None,
                     fallback: Fallback | None = None) -> pd.DataFrame:
    """Every loaded interval in ``events`` (all of them up to the range end: an interval may start before it).

    Open intervals end at ``alive_until`` (see the module docstring; None: at their start, i.e. not billed).
    Missing prices and holdings (pre-v8 events) come from ``fallback``. Columns: :data:`INTERVAL_COLUMNS`."""
    if len(events) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in INTERVAL_COLUMNS})
    closed, still_open = _walk(events.sort_values("ts", kind="stable"))
    for iv in still_open.values():
        end = iv["start"] if alive_until is None else max(iv["start"], alive_until)
        closed.append({**iv, "end": end, "closed_by": "open"})
    for iv in closed:
        if fallback is not None and (iv["price_per_hour"] is None or iv["holdings"] is None):
            price, holdings = fallback(iv["model"], iv["profile"])
            iv["price_per_hour"] = price if iv["price_per_hour"] is None else iv["price_per_hour"]
            iv["holdings"] = holdings if iv["holdings"] is None else iv["holdings"]
        iv["holdings"] = iv["holdings"] or {}
    out = pd.DataFrame(closed, columns=list(INTERVAL_COLUMNS))
    out["price_per_hour"] = out["price_per_hour"].astype("float64")
    return out.sort_values(["start", "model", "node", "instance"], kind="stable").reset_index(drop=True)


def clip(intervals: pd.DataFrame, since: float | None, until: float | None) -> pd.DataFrame:
    """Intervals cut to ``[since, until)``, with ``loaded_seconds`` and ``runtime_cost`` (hours x price)."""
    out = intervals.copy()
    start = out["start"].astype("float64")
    end = out["end"].astype("float64")
    if since is not None:
        start = start.clip(lower=since)
    if until is not None:
        end = end.clip(upper=until)
    out["start"], out["end"] = start, end
    out = out[out["end"] > out["start"]].reset_index(drop=True)
    out["loaded_seconds"] = out["end"] - out["start"]
    out["runtime_cost"] = out["loaded_seconds"] / 3600.0 * out["price_per_hour"].fillna(0.0)
    return out


def _local_rows(requests: pd.DataFrame) -> np.ndarray:
    """Rows that used a local model process: not cache hits, not remote upstreams (their ``instance`` is a host)."""
    keep = np.ones(len(requests), dtype=bool)
    if "cached" in requests.columns:
        keep &= ~requests["cached"].to_numpy(dtype=bool)
    if "instance" in requests.columns:
        inst = requests["instance"].fillna("").astype(str)
        base = inst.str.replace(r"[@#]\d+$", "", regex=True).to_numpy()  # "chat@1" -> "chat"; a host stays one
        keep &= (inst.to_numpy() == "") | (base == requests["model"].astype(str).to_numpy())
    return keep


def _served_where(frame: pd.DataFrame) -> pd.Series:
    """Node and model of each row as one label (no node column, or none recorded: "", a pre-v10 row)."""
    node = frame["node"].fillna("").astype(str) if "node" in frame.columns else pd.Series("", index=frame.index)
    return node + "\x00" + frame["model"].astype(str)


def apportion(requests: pd.DataFrame, intervals: pd.DataFrame,
              values: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each interval's ``values`` over its model's requests on its node with ``start <= ts < end`` by tokens.

    Returns the per-request shares (aligned to ``requests.index``, one column per value) and the unattributed
    part of each interval (aligned to ``intervals.index``: the whole value where the interval served no tokens)."""
    values = list(values)
    per_row = np.zeros((len(requests), len(values)))
    left = intervals[values].to_numpy(dtype=np.float64, copy=True) if len(intervals) else np.zeros((0, len(values)))
    if len(requests) and len(intervals):
        weight = (requests["prompt_tokens"].to_numpy(dtype=np.float64)
                  + requests["completion_tokens"].to_numpy(dtype=np.float64)) * _local_rows(requests)
        ts = requests["ts"].to_numpy(dtype=np.float64)
        models = _served_where(requests).to_numpy()
        for model, ivs in intervals.groupby(_served_where(intervals), sort=False):
            rows = np.flatnonzero(models == model)
            if not len(rows):
                continue
            rows = rows[np.argsort(ts[rows], kind="stable")]
            t, w = ts[rows], weight[rows]
            cum = np.concatenate(([0.0], np.cumsum(w)))
            lo = np.searchsorted(t, ivs["start"].to_numpy(dtype=np.float64), side="left")
            hi = np.searchsorted(t, ivs["end"].to_numpy(dtype=np.float64), side="left")
            tokens = cum[hi] - cum[lo]
            pos = intervals.index.get_indexer(ivs.index)
            served = tokens > 0
            rate = np.zeros((len(ivs), len(values)))
            rate[served] = left[pos[served]] / tokens[served, None]
            left[pos[served]] = 0.0
            diff = np.zeros((len(rows) + 1, len(values)))
            np.add.at(diff, lo, rate)
            np.add.at(diff, hi, -rate)
            per_row[rows] += np.cumsum(diff[:-1], axis=0) * w[:, None]
    return (pd.DataFrame(per_row, index=requests.index, columns=values),
            pd.DataFrame(left, index=intervals.index, columns=values))
