"""GPU time and energy of loaded intervals, and the per-model and per-key breakdown of runtime cost beside them.

A model holding a device for an interval (its start event's ``holdings``) gets that device's time and energy for
the interval; when several hold one device at once they split it by their memory share (a holding of 0 MB weighs
as 1 MB). Energy integrates the stored device samples' ``power_watts``: each sample holds until the next one, for
at most ``max_gap`` seconds (a manager that was down measured nothing, and nothing is invented). Device time on
devices whose samples say ``device_type`` "GPU" is GPU time. Device energy with no model holding the device is idle
energy, reported per device. Per-interval amounts then go to requests and keys by token share
(``runtime_cost.apportion``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .runtime_cost import Fallback, apportion, clip, loaded_intervals
from .store import UsageStore

__all__ = ["MAX_GAP", "breakdown", "device_shares", "store_breakdown"]

MAX_GAP = 90.0  # seconds a device sample stands for at most (the store keeps one every 30 s while running)
VALUES = ("runtime_cost", "gpu_seconds", "energy_wh")
UNATTRIBUTED = "(idle)"  # the by-key row for runtime, GPU time and energy no request's tokens took


def _segments(bounds: np.ndarray, samples: pd.DataFrame, max_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Durations and power (W; 0 where no sample covers it) of the segments between sorted ``bounds``."""
    dt = np.diff(bounds)
    power = np.zeros(len(dt))
    if len(samples):
        ts = samples["ts"].to_numpy(dtype=np.float64)
        watts = samples["power_watts"].to_numpy(dtype=np.float64)
        cover_end = np.minimum(np.append(ts[1:], np.inf), ts + max_gap)
        mid = bounds[:-1] + dt / 2
        i = np.searchsorted(ts, mid, side="right") - 1
        ok = (i >= 0) & (mid < cover_end[np.maximum(i, 0)])
        power = np.where(ok, np.nan_to_num(watts[np.maximum(i, 0)]), 0.0)
    return dt, power


def device_shares(intervals: pd.DataFrame, samples: pd.DataFrame, since: float, until: float,
                  max_gap: float = MAX_GAP) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each interval's ``gpu_seconds`` and ``energy_wh`` in ``[since, until)``, and per device its type, energy and
    idle energy (Wh). ``intervals`` as from ``loaded_intervals`` (its ``holdings``: {device: MB}); ``samples`` as
    from ``UsageStore.device_frame``. Devices are per node: two nodes' ``gpu0`` are two devices (the devices frame
    has a ``node`` column; "" for rows from before v10)."""
    gpu_s = np.zeros(len(intervals))
    wh = np.zeros(len(intervals))
    if len(samples):
        samples = samples.sort_values("ts", kind="stable")
        samples = samples.assign(power_watts=samples["power_watts"].astype("float64"))
    held: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}  # (node, device) -> its holders
    for pos, (node, start, end, holdings) in enumerate(zip(_nodes(intervals), intervals["start"], intervals["end"],
                                                           intervals["holdings"], strict=True)):
        for device, mb in (holdings or {}).items():
            held.setdefault((node, device), []).append((pos, float(start), float(end), max(float(mb), 1.0)))
    sampled = _nodes(samples) if len(samples) else pd.Series([], dtype=object)
    seen = set(zip(sampled, samples["device"].astype(str), strict=True)) if len(samples) else set()
    devices = sorted(set(held) | seen)
    rows = []
    for node, device in devices:
        mine = samples[(sampled == node).to_numpy() & (samples["device"] == device).to_numpy()] if len(samples) \
            else samples
        kind = next((t for t in (mine["device_type"] if "device_type" in mine.columns else []) if t), "")
        holders = held.get((node, device), [])
        pts = [since, until, *(t for _, s, e, _ in holders for t in (s, e))]
        if len(mine):
            ts = mine["ts"].to_numpy(dtype=np.float64)
            pts += [*ts, *(ts + max_gap)]
        bounds = np.unique(np.clip(np.asarray(pts, dtype=np.float64), since, until))
        dt, power = _segments(bounds, mine, max_gap)
        weight = np.zeros(len(bounds))  # total MB holding the device in each segment (via a difference array)
        spans = [(pos, int(np.searchsorted(bounds, max(s, since))), int(np.searchsorted(bounds, min(e, until))), w)
                 for pos, s, e, w in holders]
        for _, a, b, w in spans:
            if b > a:
                weight[a] += w
                weight[b] -= w
        total = np.cumsum(weight)[:-1]
        busy = total > 0
        per_mb_s = np.concatenate(([0.0], np.cumsum(np.where(busy, dt / np.where(busy, total, 1), 0.0))))
        per_mb_j = np.concatenate(([0.0], np.cumsum(np.where(busy, power * dt / np.where(busy, total, 1), 0.0))))
        for pos, a, b, w in spans:
            if b > a:
                if kind == "GPU":
                    gpu_s[pos] += w * (per_mb_s[b] - per_mb_s[a])
                wh[pos] += w * (per_mb_j[b] - per_mb_j[a]) / 3600.0
        energy = power * dt
        rows.append({"device": device, "device_type": kind, "energy_wh": float(energy.sum() / 3600.0),
                     "idle_energy_wh": float(energy[~busy].sum() / 3600.0),
                     "held_seconds": float(dt[busy].sum()), "samples": len(mine), "node": node})
    out = intervals.assign(gpu_seconds=gpu_s, energy_wh=wh)
    return out, pd.DataFrame(rows, columns=["device", "device_type", "energy_wh", "idle_energy_wh", "held_seconds",
                                            "samples", "node"])


def _nodes(frame: pd.DataFrame) -> pd.Series:
    """Each row's node ("" without a node column or value: a single manager's rows from before v10)."""
    if "node" not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return frame["node"].fillna("").astype(str)


def breakdown(requests: pd.DataFrame, events: pd.DataFrame, samples: pd.DataFrame, since: float, until: float,
              alive_until: float | None, fallback: Fallback | None = None,
              max_gap: float = MAX_GAP) -> dict[str, pd.DataFrame]:
    """Runtime cost, GPU time and energy of ``[since, until)``, by model, by key, per device, per interval, per
    request (frames; see :func:`store_breakdown` for what each holds). ``events``: every event before ``until``."""
    intervals = clip(loaded_intervals(events, alive_until, fallback), since, until)
    intervals, devices = device_shares(intervals, samples, since, until, max_gap)
    per_request, idle = apportion(requests, intervals, VALUES)
    by_model = intervals.groupby("model", sort=True).agg(
        intervals=("start", "size"), loaded_seconds=("loaded_seconds", "sum"), runtime_cost=("runtime_cost", "sum"),
        gpu_seconds=("gpu_seconds", "sum"), energy_wh=("energy_wh", "sum")).reset_index()
    if len(requests):
        tokens = requests.assign(model=requests["model"].astype(str)).groupby("model", sort=True).agg(
            requests=("ts", "size"), total_tokens=("total_tokens", "sum"), token_cost=("cost", "sum"))
        by_model = by_model.merge(tokens.reset_index(), on="model", how="outer")
    for col in ("intervals", "loaded_seconds", "runtime_cost", "gpu_seconds", "energy_wh", "requests",
                "total_tokens", "token_cost"):
        by_model[col] = by_model[col].fillna(0) if col in by_model.columns else 0
    keyed = per_request.assign(key_id=requests["key_id"].astype(object).to_numpy() if len(requests) else [],
                               total_tokens=requests["total_tokens"].to_numpy() if len(requests) else [],
                               token_cost=requests["cost"].to_numpy() if len(requests) else [])
    by_key = keyed.groupby("key_id", sort=True, dropna=False)[["total_tokens", "token_cost", *VALUES]].sum()
    by_key = by_key.reset_index()
    by_key["key_id"] = by_key["key_id"].astype(object).where(by_key["key_id"].notna(), None)
    if len(idle) and idle.to_numpy().any():
        rest = {"key_id": UNATTRIBUTED, "total_tokens": 0, "token_cost": 0.0,
                **{v: float(idle[v].sum()) for v in VALUES}}
        by_key = pd.concat([by_key, pd.DataFrame([rest])], ignore_index=True)
    return {"by_model": by_model, "by_key": by_key, "devices": devices,
            "intervals": intervals.drop(columns=["holdings"]).assign(unattributed_runtime_cost=idle["runtime_cost"]),
            "requests": per_request}


def store_breakdown(store: UsageStore, since: float, until: float | None = None, alive_until: float | None = None,
                    fallback: Fallback | None = None, with_requests: bool = True) -> dict[str, pd.DataFrame]:
    """:func:`breakdown` of a store (blocking): a running manager passes ``alive_until`` = now; read alone, the
    store's last sign of life stands for it. Frames: ``by_model`` (model, intervals, loaded_seconds, runtime_cost,
    gpu_seconds, energy_wh, requests, total_tokens, token_cost), ``by_key`` (key_id, total_tokens, token_cost,
    runtime_cost, gpu_seconds, energy_wh; key_id "(idle)" for what no request took), ``devices`` (device,
    device_type, energy_wh, idle_energy_wh, held_seconds, samples, node), ``intervals`` (node, model, instance, profile,
    start, end, closed_by, price_per_hour, loaded_seconds, runtime_cost, gpu_seconds, energy_wh,
    unattributed_runtime_cost) and ``requests`` (runtime_cost, gpu_seconds, energy_wh per request row).
    ``with_requests=False`` skips reading the request log (by-model figures only; everything is unattributed)."""
    until = time.time() if until is None else until
    if alive_until is None:
        alive_until = store.last_sign_of_life()
    requests = store.requests_frame(since=since, until=until if with_requests else since)
    events = store.events_frame(until=until)
    samples = store.device_frame(since=since - MAX_GAP, until=until)
    return breakdown(requests, events, samples, since, until, alive_until, fallback)

