"""The what-if of the analysis app: the selected rows repriced under an edited price table, beside what was billed.

:func:`reprice` gives :func:`llm_manager.accounting.pricing.reprice`'s numbers bit for bit, built for the app's
frames (ts-sorted, as the store returns them) to stay well under a second on 10 million rows
(``bench/analytics.py``); any other order takes the general function. No Panel here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..accounting import pricing as _pricing
from ..accounting.analytics import _arr, _codes, _ints, _sorted, _step_origin

__all__ = ["billed_vs_repriced", "reprice"]


def reprice(df: pd.DataFrame, pricing_by_model: Any) -> pd.Series:
    """:func:`llm_manager.accounting.pricing.reprice` (the same numbers, bit for bit) for the what-if over a
    ts-sorted frame, the store's order, with no sort and no per-model copy of the rows.

    The rows are cut into the few contiguous time slices in which every model's price is constant: month starts,
    each book's block starts, and the rows where a model's running monthly tokens cross a volume tier (found from
    per-chunk token sums, then inside one chunk). In each slice a row's prices are a lookup of its model code in a
    small table; prompt tiers compare the row's prompt with its model's thresholds."""
    return pd.Series(_reprice(df, pricing_by_model), index=df.index, name="cost")


_CHUNK = 1 << 16  # rows per chunk when locating volume-tier crossings


def _reprice(df: pd.DataFrame, pricing_by_model: Any) -> np.ndarray:
    n = len(df)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    ts = _arr(df, "ts")
    if not _sorted(ts):
        return _pricing.reprice(df, pricing_by_model).to_numpy()
    small, labels = _codes(df["model"])
    books = [_pricing.as_book(pricing_by_model.get(label)) if label is not None else None for label in labels]
    cost = np.zeros(n, dtype=np.float64)
    if not any(books):
        return cost
    codes = small.astype(np.intp)  # once: a lookup by small codes converts them on every call
    prompt, completion = _ints(df, "prompt_tokens"), _ints(df, "completion_tokens")
    spare, state = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.intp)  # reused: no page faults per slice
    months = [0, *(int(x) for x in np.searchsorted(ts, _month_starts(ts), side="left")), n]
    for m0, m1 in zip(months, months[1:], strict=False):
        if m0 == m1:
            continue
        cuts = {m0, m1}
        starts = {}  # code -> the rows where each of its book's blocks starts, in this month
        for code, book in enumerate(books):
            if book is not None:
                starts[code] = [m0 + int(x) for x in np.searchsorted(ts[m0:m1], book.starts, side="left")]
                cuts.update(x for x in starts[code] if m0 < x < m1)
        crossings = _tier_crossings(small, prompt, completion, m0, m1, books)
        cuts.update(x for rows in crossings.values() for x in rows.values() if m0 < x < m1)
        edges = sorted(cuts)
        for a, b in zip(edges, edges[1:], strict=False):
            blocks = [None if book is None else _block_at(starts[code], a, book) for code, book in enumerate(books)]
            tiers = [0 if blk is None else sum(1 for t in blk.volume_tiers
                                               if crossings.get(code, {}).get(t.above_tokens, m1) <= a)
                     for code, blk in enumerate(blocks)]
            _slice_cost(codes[a:b], prompt[a:b], completion[a:b], blocks, tiers, cost[a:b], spare[a:b], state[a:b])
    return cost


def _block_at(starts: list[int], row: int, book: Any) -> Any:
    """The block of ``book`` in effect at ``row`` (None before its first)."""
    i = int(np.searchsorted(np.asarray(starts), row, side="right")) - 1
    return book.blocks[i] if i >= 0 else None


def _slice_cost(codes: np.ndarray, p: np.ndarray, c: np.ndarray, blocks: list[Any], tiers: list[int],
                out: np.ndarray, spare: np.ndarray, state: np.ndarray) -> None:
    """Rows of one slice (each model's block and volume tier fixed) into ``out``: ``(p * in + c * out) / per`` as
    ``Pricing.cost`` computes it, the prices looked up by state = model code, plus (k + 1) per distinct prompt
    threshold of the slice the prompt exceeds (each model's own prompt tier follows from that count)."""
    k = len(blocks) + 1
    thresholds = sorted({t.above_prompt_tokens for blk in blocks if blk is not None for t in blk.prompt_tiers})
    levels = len(thresholds) + 1
    inp, outp, per = np.zeros(k * levels), np.zeros(k * levels), np.ones(k * levels)
    for code, (blk, tier) in enumerate(zip(blocks, tiers, strict=True)):
        if blk is None:
            continue
        vt = blk.volume_tiers[tier - 1] if tier else None
        base = (vt.input, vt.output) if vt else (blk.input, blk.output)
        for level in range(levels):
            exceeded = thresholds[:level]  # the prompt is above these (and only these) thresholds
            mine = [t for t in blk.prompt_tiers if t.above_prompt_tokens in exceeded]
            i = level * k + code
            inp[i], outp[i] = (mine[-1].input, mine[-1].output) if mine else base
            per[i] = blk.per
    if thresholds:
        np.copyto(state, codes)
        for t in thresholds:
            state += (p > t) * k
        index = state
    else:
        index = codes
    inp.take(index, out=out)
    np.multiply(out, p, out=out)
    outp.take(index, out=spare)
    np.multiply(spare, c, out=spare)
    out += spare
    if np.all(per == per[0]):
        out /= per[0]
    else:
        per.take(index, out=spare)
        out /= spare


def _tier_crossings(codes: np.ndarray, prompt: np.ndarray, completion: np.ndarray, m0: int, m1: int,
                    books: list[Any]) -> dict[int, dict[int, int]]:
    """For each model whose book has volume tiers, each threshold's first row in [m0, m1) whose tokens of the
    same model before it (in this month) reach the threshold (absent: never reached)."""
    wanted = {code: sorted({t.above_tokens for blk in book.blocks for t in blk.volume_tiers})
              for code, book in enumerate(books) if book is not None and any(b.volume_tiers for b in book.blocks)}
    if not wanted:
        return {}
    k = len(books) + 1
    cs = codes[m0:m1]
    tok = prompt[m0:m1] + completion[m0:m1]
    nchunks = (m1 - m0 + _CHUNK - 1) // _CHUNK
    key = np.repeat(np.arange(nchunks, dtype=np.int32) * np.int32(k), _CHUNK)[:m1 - m0]
    key += cs
    sums = np.bincount(key, weights=tok, minlength=nchunks * k).reshape(nchunks, k)
    out: dict[int, dict[int, int]] = {}
    for code, thresholds in wanted.items():
        incl = np.cumsum(sums[:, code])  # exact: token sums stay far below 2**53
        excl = incl - sums[:, code]
        found = out.setdefault(code, {})
        for thr in thresholds:
            k0 = int(np.searchsorted(incl, thr, side="left"))  # first chunk whose sum through it reaches thr
            if k0 >= nchunks:
                continue
            lo = k0 * _CHUNK
            rows = np.flatnonzero(cs[lo:lo + _CHUNK] == code)
            before = excl[k0] + np.cumsum(tok[lo + rows]) - tok[lo + rows]
            hit = np.flatnonzero(before >= thr)
            if len(hit):
                found[thr] = m0 + lo + int(rows[hit[0]])
                continue
            # reached by this chunk's last row of the model: the crossing is the model's next row, if any
            for k1 in range(k0 + 1, nchunks):
                later = np.flatnonzero(cs[k1 * _CHUNK:(k1 + 1) * _CHUNK] == code)
                if len(later):
                    found[thr] = m0 + k1 * _CHUNK + int(later[0])
                    break
    return out


def billed_vs_repriced(df: pd.DataFrame, pricing_by_model: Any, freq: str = "D") -> dict[str, pd.DataFrame]:
    """The what-if: the rows' cost as billed beside their cost under ``pricing_by_model``, by model (with the
    difference and its share) and per time bucket, plus the totals."""
    new = _reprice(df, pricing_by_model)
    billed = _arr(df, "cost") if len(df) else np.zeros(0)
    if len(df):
        codes, labels = _codes(df["model"])
        n = len(labels)
        present = np.flatnonzero(np.bincount(codes, minlength=n)[:n])
        b = np.bincount(codes, weights=billed, minlength=n)[present]
        r = np.bincount(codes, weights=new, minlength=n)[present]
        names = pd.Series([labels[i] for i in present], dtype=object)
    else:
        b = r = np.zeros(0)
        names = pd.Series([], dtype=object)
    by_model = pd.DataFrame({"model": names, "billed": b, "repriced": r, "difference": r - b})
    by_model["change"] = np.where(b > 0, (r - b) / np.where(b > 0, b, 1.0), np.nan)
    by_model = by_model.sort_values("model", kind="stable").reset_index(drop=True)
    over = pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "billed": pd.Series(dtype="float64"),
                         "repriced": pd.Series(dtype="float64")})
    if len(df):
        times, starts = _bucket_starts(df, freq)
        counts = np.diff(starts, append=len(df)) if starts is not None else None
        if starts is not None and counts is not None:  # sorted: each bucket a slice
            idx = np.minimum(starts, len(df) - 1)
            keep = counts > 0
            over = pd.DataFrame({"time": times[keep], "billed": np.add.reduceat(billed, idx)[keep],
                                 "repriced": np.add.reduceat(new, idx)[keep]})
        else:
            step, origin = _step_origin(freq)
            bucket = ((_arr(df, "ts") - origin) // step).astype(np.int64)
            lo = int(bucket.min())
            bucket -= lo
            m = int(bucket.max()) + 1
            keep = np.flatnonzero(np.bincount(bucket, minlength=m))
            over = pd.DataFrame({"time": pd.to_datetime((keep + lo) * step + origin, unit="s", utc=True),
                                 "billed": np.bincount(bucket, weights=billed, minlength=m)[keep],
                                 "repriced": np.bincount(bucket, weights=new, minlength=m)[keep]})
    return {"by_model": by_model, "over_time": over.reset_index(drop=True),
            "totals": pd.DataFrame({"billed": [float(billed.sum())], "repriced": [float(new.sum())]})}


def _bucket_starts(df: pd.DataFrame, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray | None]:
    """Bucket start times and, for a ts-sorted frame, each bucket's first row (None when unsorted)."""
    step, origin = _step_origin(freq)
    ts = _arr(df, "ts")
    lo, hi = int((ts.min() - origin) // step), int((ts.max() - origin) // step)
    edges = np.arange(lo, hi + 1, dtype=np.int64) * step + origin
    times = pd.to_datetime(edges, unit="s", utc=True)
    return times, (np.searchsorted(ts, edges.astype(np.float64), side="left") if _sorted(ts) else None)


def _month_starts(ts: np.ndarray) -> np.ndarray:
    """The UTC month starts inside the span of ``ts`` (sorted; after its first month's), as epoch seconds."""
    first = np.datetime64(int(np.floor(ts[0])), "s").astype("datetime64[M]")
    last = np.datetime64(int(np.floor(ts[-1])), "s").astype("datetime64[M]")
    return np.arange(first + 1, last + 1).astype("datetime64[s]").astype(np.int64).astype(np.float64)
