"""The what-if of a price change: history as billed beside history repriced under an edited price table.

Billed is each row's stored ``cost`` (the price in effect when it was served, never rewritten); repriced is
``pricing.reprice`` under the edited books (each row under the block in effect at its ``ts``). The dashboard, the
HTTP API and notebooks call :func:`billed_vs_repriced`; :func:`edited_books` turns an edited table into books.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .pricing import PriceBook, Pricing, parse_pricing, reprice

__all__ = ["WHATIF_COLUMNS", "billed_vs_repriced", "edited_books"]

WHATIF_COLUMNS = ("requests", "total_tokens", "billed", "repriced", "delta")
_DIMS = ("model", "key_id", "day")


def edited_books(current: Mapping[str, PriceBook | Pricing | None],
                 edits: Mapping[str, Any]) -> dict[str, PriceBook | Pricing | None]:
    """``current`` with each model in ``edits`` replaced by its parsed value (a pricing dict, a list of dated
    blocks, or None/{} for free). A bad value raises ConfigError naming ``pricing.<model>...``."""
    out = dict(current)
    for name, raw in edits.items():
        out[name] = parse_pricing(raw or None, f"pricing.{name}")
    return out


def billed_vs_repriced(df: pd.DataFrame, books: Mapping[str, PriceBook | Pricing | None],
                       by: Sequence[str] = _DIMS, batch_discount: Mapping[str, float] | None = None,
                       default_discount: float = 0.0) -> pd.DataFrame:
    """Billed vs repriced cost of a requests frame, grouped by any of ``model``, ``key_id``, ``day``.

    Returns one row per group present: the ``by`` columns (``model`` and ``key_id`` as strings, ``key_id`` None for
    requests without a key; ``day`` a UTC midnight timestamp) then ``requests``, ``total_tokens``, ``billed``,
    ``repriced`` and ``delta`` (= repriced - billed), sorted by the ``by`` columns. Cache hits bill 0 and stay 0;
    batch lines (``batch_id`` set) take ``batch_discount[model]`` (else ``default_discount``) off, as billed.
    Reprice whole months: volume tiers count only the rows in the frame.
    """
    unknown = [d for d in by if d not in _DIMS]
    if unknown:
        raise ValueError(f"by: unknown dimension {unknown[0]!r}; expected some of {', '.join(_DIMS)}")
    by = list(by)
    if len(df) == 0:
        return pd.DataFrame({**{d: pd.Series(dtype="object") for d in by},
                             **{c: pd.Series(dtype="int64" if c in ("requests", "total_tokens") else "float64")
                                for c in WHATIF_COLUMNS}})
    repriced = reprice(df, books).to_numpy()
    if "cached" in df.columns:
        repriced = np.where(df["cached"].to_numpy(dtype=bool), 0.0, repriced)
    if "batch_id" in df.columns and df["batch_id"].notna().any():
        off = df["model"].astype(str).map(batch_discount or {}).fillna(default_discount).to_numpy(dtype=np.float64)
        repriced = np.where(df["batch_id"].notna().to_numpy(), repriced * (1.0 - off), repriced)
    tokens = df["prompt_tokens"].to_numpy(dtype=np.int64) + df["completion_tokens"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame({"billed": df["cost"].to_numpy(dtype=np.float64), "repriced": repriced,
                          "total_tokens": tokens, "requests": 1})
    if "model" in by:
        frame["model"] = df["model"].astype(str).to_numpy()
    if "key_id" in by:
        frame["key_id"] = df["key_id"].astype(object).to_numpy()
    if "day" in by:
        frame["day"] = pd.to_datetime(np.floor(df["ts"].to_numpy(dtype=np.float64) / 86400) * 86400, unit="s",
                                      utc=True)
    if not by:
        g = frame[["requests", "total_tokens", "billed", "repriced"]].sum().to_frame().T
    else:
        g = frame.groupby(by, sort=True, dropna=False)[["requests", "total_tokens", "billed", "repriced"]].sum()
        g = g.reset_index()
    g["requests"] = g["requests"].astype(np.int64)
    g["total_tokens"] = g["total_tokens"].astype(np.int64)
    g["delta"] = g["repriced"] - g["billed"]
    if "key_id" in g.columns:
        g["key_id"] = g["key_id"].astype(object).where(g["key_id"].notna(), None)
    return g[[*by, *WHATIF_COLUMNS]]
