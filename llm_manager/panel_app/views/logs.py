"""Logs: a live tail of one model's output (stdout, stderr and the manager's own notes about it).

Reads ``logs(name, n)`` (the model's in-memory ring buffer) each second while the tab is shown. New lines are
appended as a new chunk, so the box follows the tail while the reader is at the bottom and stays put when they
have scrolled up to read something (Panel's Column auto-scroll).
"""

from __future__ import annotations

import time
from typing import Any

import panel as pn

from .base import View

STREAM_MARK = {"stdout": "out", "stderr": "ERR", "manager": "mgr"}
MAX_CHUNKS = 50  # then the box is rebuilt as one block of the last ``lines`` lines
LINE_STYLE = {"font-family": "monospace", "font-size": "12px", "color": "#eceff1", "padding": "0 8px",
              "line-height": "1.45"}


def format_lines(lines: list[dict[str, Any]]) -> str:
    """One line per entry: local time, which stream, the text."""
    return "\n".join(f"{time.strftime('%H:%M:%S', time.localtime(x['ts']))} "
                     f"{STREAM_MARK.get(x.get('stream', ''), x.get('stream', ''))[:3]:>3} │ {x['line']}"
                     for x in lines)


def new_since(shown: list[dict[str, Any]], lines: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The lines after the last one shown, or None when they no longer line up (rebuild the box)."""
    if not shown:
        return None
    last = shown[-1]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] == last:
            return lines[i + 1:]
    return None


class LogsView(View):
    title = "Logs"

    def __init__(self, source: Any):
        super().__init__(source)
        self.model = pn.widgets.Select(label="Model", options=[], width=260)
        self.lines = pn.widgets.Select(label="Lines", options=[50, 200, 500, 2000], value=200, width=100)
        self.follow = pn.widgets.Checkbox(label="follow (refresh every second)", value=True, align="end")
        self.model.param.watch(self._on_change, "value")
        self.lines.param.watch(self._on_change, "value")
        self.box = pn.Column(height=520, scroll=True, sizing_mode="stretch_width", auto_scroll_limit=120, margin=(5, 10),
                             view_latest=True, styles={"background": "#263238", "border-radius": "4px",
                                                       "padding": "6px 0"})
        self.shown: list[dict[str, Any]] | None = None
        self._key: tuple[str, int] | None = None

    @property
    def text(self) -> str:
        """Everything the box shows now, as one string."""
        return "\n".join(p.object for p in self.box.objects)

    def set_models(self, names: list[str]) -> None:
        """New options and the model shown, set together: options alone made Panel pick the first model in
        Python without the browser's select being told, so it stayed blank over that model's lines."""
        if names != list(self.model.options):
            value = self.model.value if self.model.value in names else (names[0] if names else None)
            self.model.param.update(options=names, value=value)

    async def _on_change(self, _event: Any) -> None:
        await self.refresh()

    def _chunk(self, lines: list[dict[str, Any]]) -> pn.pane.Str:
        return pn.pane.Str(format_lines(lines) or "(no output yet)", styles=LINE_STYLE, margin=0,
                           sizing_mode="stretch_width")

    async def _refresh(self) -> None:
        if not self.model.value:
            return
        key = (self.model.value, self.lines.value)
        lines = await self.source.logs(*key)
        if key == self._key and lines == self.shown:
            return
        added = new_since(self.shown or [], lines) if key == self._key else None
        if added is not None and len(self.box.objects) < MAX_CHUNKS:
            if added:  # (older lines may only have rotated out of the ring buffer)
                self.box.append(self._chunk(added))
        else:
            self.box.objects = [self._chunk(lines)]
        self.shown, self._key = lines, key

    async def tick(self) -> None:
        """The periodic refresh: skipped while the person has paused following."""
        if self.follow.value:
            await self.refresh(wait=False)

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.error, pn.Row(self.model, self.lines, self.follow), self.box, sizing_mode="stretch_width")
