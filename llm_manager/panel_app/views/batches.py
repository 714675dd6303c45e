"""Batches: the Batches API's jobs, newest first, with their progress and a cancel link for running ones.

Refreshed every second while a batch is in progress (and the tab is shown), otherwise every ``IDLE_S`` so new
batches appear. A batch's progress is its lines done (output or error line committed) of its total.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

import pandas as pd
import panel as pn

from .base import View

COLUMNS = ["batch", "endpoint", "status", "action", "created", "progress", "done", "failed", "expires"]
WIDTHS = {"batch": 250, "endpoint": 160, "status": 110, "action": 80, "created": 150, "progress": 160,
          "done": 120, "failed": 70, "expires": 110}
RUNNING = ("validating", "in_progress", "finalizing")  # what cancel acts on
ACTIVE = (*RUNNING, "cancelling")  # still changing: refreshed every second
STATUS_COLORS = {"validating": "#1565c0", "in_progress": "#1565c0", "finalizing": "#1565c0",
                 "cancelling": "#ef6c00", "completed": "#2e7d32", "failed": "#c62828", "expired": "#6d4c41",
                 "cancelled": "#757575"}
CANCEL_HTML = '<span title="cancel this batch" style="color:#c62828;font-weight:700;cursor:pointer">✕ cancel</span>'
OK = '<span style="color:#2e7d32;font-weight:700">✓</span>'
FAIL = '<span style="color:#c62828;font-weight:700">✗</span>'
LIMIT = 100
IDLE_S = 10.0


def status_badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#455a64")
    return (f'<span style="background:{color};color:white;border-radius:8px;padding:1px 8px;'
            f'font-weight:600">{html.escape(status.replace("_", " "))}</span>')


def until(ts: float | None, now: float) -> str:
    """"in 23 h 59 min" / "in 4 min" / "due": how long a running batch has left."""
    if not ts:
        return "—"
    left = ts - now
    if left <= 0:
        return "due"
    hours, minutes = divmod(int(left // 60), 60)
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min" if minutes else f"in {left:.0f} s"


def progress_pct(counts: dict[str, int]) -> float:
    total = counts.get("total") or 0
    done = (counts.get("completed") or 0) + (counts.get("failed") or 0)
    return round(100.0 * done / total, 1) if total else 0.0


def batch_rows(batches: list[dict[str, Any]], now: float | None = None) -> pd.DataFrame:
    """One row per batch, newest first, every value already as a person reads it."""
    now = now or time.time()
    rows = []
    # stable: batches of the same second keep the source's order (newest first to the sub-second)
    for b in sorted(batches, key=lambda b: b.get("created_at") or 0, reverse=True):
        counts = b.get("request_counts") or {}
        total, failed = counts.get("total") or 0, counts.get("failed") or 0
        done = (counts.get("completed") or 0) + failed
        rows.append({
            "batch": b["id"], "endpoint": b.get("endpoint") or "", "status": status_badge(b["status"]),
            "action": CANCEL_HTML if b["status"] in RUNNING else "",
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(b.get("created_at") or 0)),
            "progress": progress_pct(counts), "done": f"{done:,} / {total:,}", "failed": f"{failed:,}",
            "expires": until(b.get("expires_at"), now) if b["status"] in ACTIVE else "—",
        })
    return pd.DataFrame(rows, columns=COLUMNS, index=[r["batch"] for r in rows])


class BatchesView(View):
    title = "Batches"

    def __init__(self, source: Any):
        super().__init__(source)
        self.batches: list[dict[str, Any]] = []
        self.available = True
        self._at = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._messages: list[str] = []
        right = {c: "right" for c in ("done", "failed")}
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS), show_index=False, disabled=True, selectable=False, sizing_mode="stretch_width",
            layout="fit_data_fill", sortable=False, container_popup=False,
            formatters={"status": {"type": "html"}, "action": {"type": "html"},
                        "progress": {"type": "progress", "max": 100, "color": "#1565c0", "legend": True}},
            titles={"progress": "progress %", "done": "done / total"}, widths=WIDTHS,
            text_align=right, header_align=right)
        self.table.on_click(self._on_cell_click)
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"color": "#616161"})
        self.note = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width")
        self.messages = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "0.9em"})

    @property
    def active(self) -> bool:
        return any(b["status"] in ACTIVE for b in self.batches)

    async def tick(self) -> None:
        """Every second while a batch is in progress; otherwise every ``IDLE_S`` (new batches)."""
        if self.active or time.monotonic() - self._at >= IDLE_S:
            await self.refresh(wait=False)

    # ------------------------------------------------------------ cancel

    def _on_cell_click(self, event: Any) -> None:
        if event.column != "action" or event.row is None or event.row >= len(self.table.value):
            return
        batch_id = self.table.value.index[event.row]
        if any(b["id"] == batch_id and b["status"] in RUNNING for b in self.batches):
            self.cancel(batch_id)

    def cancel(self, batch_id: str) -> asyncio.Task:
        """Cancel a batch in a background task; the outcome lands in the message list."""
        self._say(f"cancelling **{batch_id}** …")
        task = asyncio.ensure_future(self._cancel(batch_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel(self, batch_id: str) -> None:
        try:
            info = await self.source.cancel_batch(batch_id)
            self._say(f"{OK} **{batch_id}** {info.get('status', 'cancelled')}")
        except Exception as exc:  # shown to the person who clicked, with the manager's reason
            self._say(f"{FAIL} **{batch_id}**: cancel failed: {getattr(exc, 'message', None) or exc}")
        await self.refresh()

    async def wait_actions(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _say(self, text: str) -> None:
        self._messages = [f"{time.strftime('%H:%M:%S')} {text}", *self._messages][:6]
        self.messages.object = "  \n".join(self._messages)

    # ------------------------------------------------------------ refresh

    async def _refresh(self) -> None:
        self._at = time.monotonic()
        batches = await self.source.batches(LIMIT)
        self.available = batches is not None
        self.note.visible = not self.available
        if not self.available:
            self.note.object = ("This manager has no Batches API (it runs without a usage store, or is an older "
                                "version): nothing to show.")
        self.batches = batches or []
        rows = batch_rows(self.batches)
        current = self.table.value
        if current is None or list(current.index) != list(rows.index):
            self.table.value = rows
        else:
            changed = rows[(rows != current).any(axis=1)]
            if len(changed):
                self.table.patch(changed)
        running = sum(b["status"] in ACTIVE for b in self.batches)
        n = len(self.batches)
        shown = f"the newest {LIMIT} batches" if n >= LIMIT else f"{n:,} batch{'' if n == 1 else 'es'}"
        self.summary.object = (f"{shown}, {running:,} in progress; refreshed every second while one is in "
                               f"progress (every {IDLE_S:.0f} s otherwise) while this tab is shown.")

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.error, self.note, self.summary, self.table, self.messages, sizing_mode="stretch_width")
