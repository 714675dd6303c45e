"""Usage reports: the request log over a range of UTC days, grouped by model, key, endpoint, day, week or month.

Pure pandas on a requests frame (as ``UsageStore.requests_frame`` and ``Accounting.usage_frame`` return), shared by
``llm-manager report`` and ``GET /api/report``; both render CSV and Parquet here and HTML in ``api/reports.py``
(this layer imports no Bokeh). Token cost is the cost as billed when each request was served, never repriced.

More columns (runtime cost, GPU-seconds, energy) come from other modules as :data:`Extra` functions: given the
group columns, one returns a frame keyed by those same columns, labelled by :func:`group_labels`, and
:func:`build_report` joins it in (missing groups count 0).
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BadRequest
from . import energy
from .runtime_cost import Fallback
from .store import UsageStore

GROUPS = ("model", "key", "endpoint", "day", "week", "month")
TIME_GROUPS = ("day", "week", "month")
FORMATS = ("csv", "parquet", "html", "json")
COLUMNS = ["requests", "errors", "cached_requests", "prompt_tokens", "completion_tokens", "total_tokens",
           "token_cost"]
_SOURCE = {"model": "model", "key": "key_id", "endpoint": "endpoint"}
DAY = 86400
_NONE = "\uffff(none)"  # stands for None while grouping; sorts after every real label

Extra = Callable[[tuple[str, ...]], pd.DataFrame]  # group columns -> a frame keyed by them, plus its columns


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    @property
    def since(self) -> float:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=timezone.utc).timestamp()

    @property
    def until(self) -> float:
        end = self.last + timedelta(days=1)
        return datetime(end.year, end.month, end.day, tzinfo=timezone.utc).timestamp()

    def __str__(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()}"


def _date(text: str, param: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise BadRequest(f"{param}: expected a date YYYY-MM-DD, got {text!r}", param=param) from None


def parse_period(first: str | None, last: str | None, today: date | None = None) -> Period:
    """``from`` and ``to`` (inclusive); by default the current month to date (UTC)."""
    today = today or datetime.now(timezone.utc).date()
    start = _date(first, "from") if first else today.replace(day=1)
    end = _date(last, "to") if last else today
    if end < start:
        raise BadRequest(f"to: {end.isoformat()} is before from {start.isoformat()}", param="to")
    return Period(start, end)


def parse_by(text: str | None) -> tuple[str, ...]:
    """A comma-separated list of groups, e.g. ``model,key,day`` (default ``model``)."""
    names = tuple(n.strip() for n in (text or "model").split(",") if n.strip())
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        raise BadRequest(f"by: unknown group {unknown[0] if unknown else text!r}; use any of {', '.join(GROUPS)}",
                         param="by")
    if len(set(names)) != len(names):
        raise BadRequest(f"by: {text!r} names a group twice", param="by")
    return names


def parse_format(text: str | None, default: str = "csv") -> str:
    fmt = (text or default).strip().lower()
    if fmt not in FORMATS:
        raise BadRequest(f"format: expected one of {', '.join(FORMATS)}, got {text!r}", param="format")
    if fmt == "parquet":
        parquet_engine()
    return fmt


def parquet_engine() -> str:
    """pyarrow or fastparquet, whichever is installed; neither is a dependency of llm-manager."""
    for name in ("pyarrow", "fastparquet"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise BadRequest("format: parquet needs pyarrow (pip install pyarrow), which is not installed here; "
                     "use csv, html or json", param="format")


# ---------------------------------------------------------------- grouping


def group_labels(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Each row's group labels: model, key (key_id, None without a key), endpoint, and the UTC day, week (its
    Monday) as YYYY-MM-DD, month as YYYY-MM. Extra columns from other modules label their rows with this too."""
    out = {}
    days = (df["ts"].to_numpy(dtype=np.float64) // DAY).astype(np.int64) if len(df) else np.zeros(0, np.int64)
    for name in by:
        if name in _SOURCE:
            col = df[_SOURCE[name]]
            out[name] = col.astype(object).where(col.notna(), None).to_numpy()
            continue
        if name == "week":
            codes = days - (days + 3) % 7  # 1970-01-01 was a Thursday: back to Monday
        else:
            codes = days
        uniq, inverse = np.unique(codes, return_inverse=True)
        stamps = pd.to_datetime(uniq * DAY, unit="s", utc=True)
        labels = stamps.strftime("%Y-%m" if name == "month" else "%Y-%m-%d").to_numpy(dtype=object)
        out[name] = labels[inverse] if len(uniq) else np.zeros(0, dtype=object)
    return pd.DataFrame(out, index=df.index)


def _errors(df: pd.DataFrame) -> np.ndarray:
    err = df["status"].to_numpy() >= 400
    return err | df["error"].notna().to_numpy() if "error" in df.columns else err


def usage_report(df: pd.DataFrame, by: Sequence[str], key_names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Requests, errors, cached requests, prompt/completion/total tokens and token cost per group, sorted by the
    group columns; with ``key_names`` (key id -> name) and a ``key`` group, a ``key_name`` column follows ``key``."""
    by = list(by)
    if len(df) == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in by} | {
            c: pd.Series(dtype="float64" if c == "token_cost" else "int64") for c in COLUMNS})
    else:
        p, c = df["prompt_tokens"].to_numpy(np.int64), df["completion_tokens"].to_numpy(np.int64)
        values = pd.DataFrame({
            "requests": 1, "errors": _errors(df).astype(np.int64),
            "cached_requests": df["cached"].to_numpy(bool).astype(np.int64) if "cached" in df else 0,
            "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "token_cost": df["cost"].to_numpy(np.float64)}, index=df.index)
        out = _sum_by(df, values, by)
    if key_names is not None and "key" in by:
        out.insert(by.index("key") + 1, "key_name", out["key"].map(lambda k: key_names.get(k, "") if k else ""))
    return out.reset_index(drop=True)


def _sum_by(df: pd.DataFrame, values: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``values`` (aligned to ``df``'s rows) summed per group of ``df``'s rows, sorted by the group columns."""
    labels = group_labels(df, by).fillna(_NONE)  # groupby drops None keys; a marker keeps them
    out = pd.concat([labels, values], axis=1).groupby(list(by), sort=True).sum().reset_index()
    for col in by:
        out[col] = out[col].astype(object).where(out[col] != _NONE, None)
    return out


def per_request_extra(df: pd.DataFrame, values: pd.DataFrame) -> Extra:
    """An :data:`Extra` of amounts already apportioned to ``df``'s request rows (aligned to its index)."""
    return lambda by: _sum_by(df, values, by) if len(df) else pd.DataFrame(columns=[*by, *values.columns])


class RuntimeColumns:
    """An :data:`Extra`: runtime cost (``price_per_hour``), GPU-seconds and energy (Wh) apportioned to the requests
    by token share (``energy.breakdown``), computed on first use. Loaded time that served no tokens is in no row:
    ``note`` says how much. ``alive_until``: now for a running manager; None: the store's last sign of life."""

    def __init__(self, store: UsageStore, df: pd.DataFrame, period: Period, alive_until: float | None = None,
                 fallback: Fallback | None = None):
        self.store, self.df, self.period, self.alive_until, self.fallback = store, df, period, alive_until, fallback
        self.note: str | None = None
        self._extra: Extra | None = None

    def __call__(self, by: tuple[str, ...]) -> pd.DataFrame:
        if self._extra is None:
            self._extra = self._compute()
        return self._extra(by)

    def _compute(self) -> Extra:
        alive = self.store.last_sign_of_life() if self.alive_until is None else self.alive_until
        p = self.period
        frames = energy.breakdown(self.df, self.store.events_frame(until=p.until),
                                  self.store.device_frame(since=p.since - energy.MAX_GAP, until=p.until),
                                  p.since, p.until, alive, self.fallback)
        values = list(energy.VALUES)
        if len(frames["by_model"]):
            idle = frames["by_model"][values].sum() - frames["requests"][values].sum()
            if (idle > 1e-9).any():
                self.note = (f"loaded time that served no tokens is in no row: {idle['runtime_cost']:,.4f} runtime "
                             f"cost, {idle['gpu_seconds']:,.0f} GPU-seconds, {idle['energy_wh']:,.2f} Wh")
        return per_request_extra(self.df, frames["requests"][values])


def merge_columns(report: pd.DataFrame, extra: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``report`` with ``extra``'s other columns joined on the group columns; groups it lacks get 0."""
    new = [c for c in extra.columns if c not in by and c not in report.columns]
    if not new:
        return report
    merged = report.merge(extra[[*by, *new]], on=list(by), how="left")
    merged[new] = merged[new].fillna(0)
    return merged


# ---------------------------------------------------------------- the whole report


@dataclass
class Report:
    """One report: its table and, for the HTML plots, totals per day, model and key over the same rows."""

    period: Period
    by: tuple[str, ...]
    table: pd.DataFrame
    views: dict[str, pd.DataFrame] = field(default_factory=dict)
    currency: str = "USD"
    notes: list[str] = field(default_factory=list)  # e.g. which extra columns could not be computed

    def totals(self) -> dict[str, Any]:
        numeric = self.table.select_dtypes("number")
        return {c: (float(v) if numeric[c].dtype.kind == "f" else int(v)) for c, v in numeric.sum().items()}


def build_report(df: pd.DataFrame, period: Period, by: Sequence[str], key_names: Mapping[str, str] | None = None,
                 currency: str = "USD", extras: Sequence[Extra] = ()) -> Report:
    """The report of ``df`` (already limited to ``period``) grouped ``by``, with each extra's columns joined in."""
    by = tuple(by)
    table = usage_report(df, by, key_names)
    notes = []
    for extra in extras:
        try:
            table = merge_columns(table, extra(by), by)
        except Exception as exc:  # an extra column is a bonus: the token report stands without it
            notes.append(f"extra columns left out: {type(exc).__name__}: {exc}")
        else:
            notes += [extra.note] if getattr(extra, "note", None) else []  # type: ignore[attr-defined]
    views = {name: usage_report(df, (name,), key_names if name == "key" else None) for name in ("day", "model", "key")}
    return Report(period, by, table, views, currency, notes)


def store_report(store: UsageStore, period: Period, by: Sequence[str], key_names: Mapping[str, str] | None = None,
                 currency: str = "USD") -> Report:
    """The report of a usage database read alone, no manager running (``llm-manager report``): names of its keys
    (plus ``key_names``), runtime cost and energy up to its last sign of life. Blocking."""
    df = store.requests_frame(since=period.since, until=period.until)
    names = {k.id: k.name for k in store.list_keys()} | dict(key_names or {})
    return build_report(df, period, by, names, currency, [RuntimeColumns(store, df, period)])


# ---------------------------------------------------------------- formats (HTML: api/reports.py)


def to_csv(report: Report) -> bytes:
    return report.table.to_csv(index=False).encode()


def to_parquet(report: Report) -> bytes:
    buf = io.BytesIO()
    report.table.to_parquet(buf, index=False, engine=parquet_engine())
    return buf.getvalue()


def filename(period: Period, fmt: str) -> str:
    """The file a report of ``period`` is saved as (CLI default, HTTP Content-Disposition)."""
    return f"llm-usage-{period.first.isoformat()}_{period.last.isoformat()}.{fmt}"
