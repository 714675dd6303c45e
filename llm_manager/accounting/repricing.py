"""Billing periods and repricing history: the vectorised half of ``pricing`` (whose module docstring has the rules).

``reprice`` recomputes the cost of a frame of usage rows under a set of price books (the what-if beside the billed
``request_log.cost``); the periods (calendar months, UTC) are what volume tiers count in. Pure numpy over frames: it
takes ``PriceBook`` or ``Pricing`` objects by their fields, so the config's price type does not depend on this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported by the functions that take frames: config.py imports this module (via pricing)
    import pandas as pd

__all__ = ["next_period_start", "period_start", "period_tokens_before", "reprice"]

# ---------------------------------------------------------------- periods


def period_start(ts: float) -> float:
    """Epoch second at which the billing period (calendar month, UTC) containing ``ts`` began."""
    month = np.datetime64(int(ts), "s").astype("datetime64[M]")
    return float(month.astype("datetime64[s]").astype(np.int64))


def next_period_start(start: float) -> float:
    """Epoch second at which the billing period after the one beginning at ``start`` begins."""
    month = np.datetime64(int(start), "s").astype("datetime64[M]") + 1
    return float(month.astype("datetime64[s]").astype(np.int64))


def _month_index(ts: np.ndarray) -> np.ndarray:
    """Months since 1970-01 (UTC) for each epoch second; a search among the few month starts the frame spans
    (several times faster than converting every value to datetime64[M])."""
    first = np.datetime64(int(np.floor(ts.min())), "s").astype("datetime64[M]")
    last = np.datetime64(int(np.floor(ts.max())), "s").astype("datetime64[M]")
    edges = np.arange(first, last + 1).astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return np.searchsorted(edges, ts, side="right") - 1 + first.astype(np.int64)


def _codes(col: pd.Series) -> tuple[np.ndarray, Sequence[Any]]:
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(), list(col.cat.categories)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return codes, list(uniques)


def _by_model_month(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Rows grouped by (model, UTC month), time order kept inside each group.

    Returns ``order`` (row positions in grouped order), the model code and the tokens of the same model and month
    before each row (both in grouped order), and the model labels. Each model is then one contiguous slice, which
    beats fancy-indexing scattered rows per model several times over.
    """
    n = len(df)
    ts = df["ts"].to_numpy(dtype=np.float64)
    tokens = df["prompt_tokens"].to_numpy(dtype=np.int64) + df["completion_tokens"].to_numpy(dtype=np.int64)
    codes, models = _codes(df["model"])
    months = _month_index(ts)
    months -= months.min()
    key = (codes.astype(np.int64) + 1) * (int(months.max()) + 1) + months  # one integer per (model, month)
    by_time = None if np.all(ts[1:] >= ts[:-1]) else np.argsort(ts, kind="stable")  # the store sorts by ts
    if by_time is not None:
        key = key[by_time]
    kmax = int(key.max())
    order = np.argsort(key.astype(np.int16 if kmax < 2**15 else np.int32 if kmax < 2**31 else np.int64),
                       kind="stable")  # a radix sort for small keys; stable keeps time order in each group
    k = key[order]
    if by_time is not None:
        order = by_time[order]
    tok = tokens[order]
    total = np.cumsum(tok)
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    base = np.repeat(total[starts] - tok[starts], np.diff(np.append(starts, n)))
    return order, codes[order], total - tok - base, models


def period_tokens_before(df: pd.DataFrame) -> np.ndarray:
    """Tokens of the same model in the same UTC month before each row (by ``ts``, ties in frame order)."""
    out = np.zeros(len(df), dtype=np.int64)
    if len(df):
        order, _, before, _ = _by_model_month(df)
        out[order] = before
    return out


def _dated(pricing: Any) -> tuple[tuple[float, ...], tuple[Any, ...]] | None:
    """(block starts, blocks) of a ``PriceBook``; a lone ``Pricing`` is in effect since always; None: no price."""
    if pricing is None:
        return None
    if hasattr(pricing, "blocks"):
        return tuple(pricing.starts), tuple(pricing.blocks)
    return (float("-inf"),), (pricing,)


def reprice(df: pd.DataFrame, pricing_by_model: Mapping[str, Any]) -> pd.Series:
    """Cost of every row under ``pricing_by_model`` (a ``PriceBook`` or ``Pricing`` per model; models without one
    cost 0), aligned to ``df.index``; each row under the block of its model's book in effect at its ``ts``.

    Vectorised: one grouping pass for the running monthly tokens, then per model and block one contiguous slice
    and a ``searchsorted`` per kind of tier; no Python loop over rows.
    """
    import pandas as pd

    cost = np.zeros(len(df), dtype=np.float64)
    if len(df) == 0:
        return pd.Series(cost, index=df.index, name="cost")
    order, codes, before, models = _by_model_month(df)
    ts = df["ts"].to_numpy(dtype=np.float64)
    prompt = df["prompt_tokens"].to_numpy(dtype=np.int64)[order]
    completion = df["completion_tokens"].to_numpy(dtype=np.int64)[order]
    bounds = np.searchsorted(codes, np.arange(len(models) + 1), side="left")  # codes are sorted
    grouped = np.zeros(len(df), dtype=np.float64)
    for code, model in enumerate(models):
        book = _dated(pricing_by_model.get(model))
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        if book is None or lo == hi:
            continue
        # a model's rows are in time order (month, then ts), so each block's rows are one contiguous slice; a row
        # exactly at a block's start takes that block
        starts, blocks = book
        dated = starts != (float("-inf"),)
        cuts = lo + np.searchsorted(ts[order[lo:hi]], starts, side="left") if dated else [lo]
        for pricing, a, b in zip(blocks, cuts, [*cuts[1:], hi], strict=True):
            if a < b:
                grouped[a:b] = _block_cost(pricing, prompt[a:b], completion[a:b], before[a:b])
    cost[order] = grouped
    return pd.Series(cost, index=df.index, name="cost")


def _block_cost(pricing: Any, p: np.ndarray, c: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``Pricing.cost`` over arrays: the volume tier by the tokens before, then prompt tiers on top."""
    v_thr = np.array([t.above_tokens for t in pricing.volume_tiers], dtype=np.int64)
    v_in = np.array([pricing.input] + [t.input for t in pricing.volume_tiers])
    v_out = np.array([pricing.output] + [t.output for t in pricing.volume_tiers])
    vi = np.searchsorted(v_thr, before, side="right")  # number of thresholds <= tokens before
    inp, out = v_in[vi], v_out[vi]
    if pricing.prompt_tiers:
        p_thr = np.array([t.above_prompt_tokens for t in pricing.prompt_tiers], dtype=np.int64)
        p_in = np.array([0.0] + [t.input for t in pricing.prompt_tiers])
        p_out = np.array([0.0] + [t.output for t in pricing.prompt_tiers])
        pi = np.searchsorted(p_thr, p, side="left")  # number of thresholds < prompt tokens
        long_prompt = pi > 0
        inp = np.where(long_prompt, p_in[pi], inp)
        out = np.where(long_prompt, p_out[pi], out)
    return (p * inp + c * out) / pricing.per
