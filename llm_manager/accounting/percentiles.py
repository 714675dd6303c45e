"""Exact percentiles per group without sorting the whole column (the analytics' latency percentiles).

For non-negative floats the bits, read as integers, are in the same order as the values: a histogram of the high word
locates the bin holding each wanted rank per group, and only the few rows in those bins are sorted. Pure numpy.
"""

from __future__ import annotations

import sys

import numpy as np

PCTS = (50.0, 95.0, 99.0)  # the percentiles every latency table shows
_EXACT_SORT_BELOW = 200_000  # smaller groups: sorting is as quick as the histogram and simpler


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)  # numpy's lerp formula


def percentiles_of(x: np.ndarray) -> np.ndarray:
    """p50/p95/p99 with numpy's default linear interpolation (sorts ``x`` in place)."""
    if x.size == 0:
        return np.full(len(PCTS), np.nan)
    x.sort()
    pos = (x.size - 1) * np.asarray(PCTS) / 100.0
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.size - 1)
    return _lerp(x[lo], x[hi], pos - lo)


def group_percentiles(codes: np.ndarray, n: int, x: np.ndarray) -> np.ndarray:
    """p50/p95/p99 of ``x`` (no NaN) per code in ``range(n)``, exact, as an (n, 3) array (NaN for empty groups).

    For non-negative floats the bits, read as integers, are in the same order as the values: a histogram of the
    high word (4096 bins per power of two) locates the bin of each needed rank per group, and only the rows in those
    bins are sorted, as integers that carry their bin and the rest of their bits."""
    out = np.full((n, len(PCTS)), np.nan)
    high = x.view(np.int32)[1::2] if sys.byteorder == "little" and x.size else x.view(np.int32)
    if x.size < _EXACT_SORT_BELOW or sys.byteorder != "little" or high.min() < 0:  # small, or negative values
        counts = np.bincount(codes, minlength=n)[:n]
        groups = np.flatnonzero(counts)
        order = np.argsort(codes, kind="stable")
        ends, xs = np.cumsum(counts), x[order]
        for g in groups:
            out[g] = percentiles_of(xs[ends[g] - counts[g]:ends[g]])
        return out
    shift = 8
    while True:
        bins = high >> shift
        bmin = int(bins.min())
        nb = int(bins.max()) - bmin + 1
        if nb * n <= 1 << 22:
            break
        shift += 2
    cell = codes.astype(np.int32) * np.int32(nb)
    cell += bins
    cell -= bmin
    hist = np.bincount(cell, minlength=n * nb)
    cum = np.cumsum(hist.reshape(n, nb), axis=1)
    counts = cum[:, -1]
    groups = np.flatnonzero(counts)
    cum = cum.ravel()
    pos = (counts[groups, None] - 1) * np.asarray(PCTS) / 100.0  # (groups, 3)
    lo = np.floor(pos).astype(np.int64)
    ranks = np.stack([lo, np.minimum(lo + 1, counts[groups, None] - 1)], axis=-1).reshape(len(groups), -1)
    tcell = np.stack([np.searchsorted(cum[g * nb:(g + 1) * nb], ranks[i], side="right") + g * nb
                      for i, g in enumerate(groups)])  # the cell holding each rank
    cells = np.unique(tcell)
    slot = np.full(n * nb, -1, dtype=np.int16 if len(cells) < 2**15 else np.int32)
    slot[cells] = np.arange(len(cells))
    picked = slot[cell]
    rows = np.flatnonzero(picked >= 0)
    low_bits = 32 + shift
    low = (1 << low_bits) - 1
    bits = x.view(np.int64)[rows]
    packed = np.sort((picked[rows].astype(np.int64) << low_bits) | (bits & low))  # by cell, then by value
    first = np.searchsorted(packed, np.arange(len(cells), dtype=np.int64) << low_bits)
    idx = first[slot[tcell]] + ranks - (cum - hist)[tcell]
    found = (packed[idx] & low) | ((tcell % nb + bmin).astype(np.int64) << low_bits)
    vals = found.astype(np.int64).view(np.float64).reshape(len(groups), len(PCTS), 2)
    out[groups] = _lerp(vals[..., 0], vals[..., 1], pos - lo)
    return out
