"""Logs: a live tail of one model's output (stdout, stderr and the manager's own notes about it).

Reads ``logs(name, n)`` (the model's in-memory ring buffer) each second while the tab is shown; the text only
changes when new lines arrive, so an idle model costs nothing in the browser.
"""

from __future__ import annotations

import time
from typing import Any

import panel as pn

from .base import View

STREAM_MARK = {"stdout": "out", "stderr": "ERR", "manager": "mgr"}


def format_lines(lines: list[dict[str, Any]]) -> str:
    """One line per entry: local time, which stream, the text."""
    return "\n".join(f"{time.strftime('%H:%M:%S', time.localtime(x['ts']))} "
                     f"{STREAM_MARK.get(x.get('stream', ''), x.get('stream', ''))[:3]:>3} │ {x['line']}"
                     for x in lines) or "(no output yet)"


class LogsView(View):
    title = "Logs"

    def __init__(self, source: Any):
        super().__init__(source)
        self.model = pn.widgets.Select(label="Model", options=[], width=260)
        self.lines = pn.widgets.Select(label="Lines", options=[50, 200, 500, 2000], value=200, width=100)
        self.follow = pn.widgets.Checkbox(label="follow (refresh every second)", value=True, align="end")
        self.model.param.watch(self._on_change, "value")
        self.lines.param.watch(self._on_change, "value")
        self.text = pn.pane.Str("", sizing_mode="stretch_width",
                                styles={"font-family": "monospace", "font-size": "12px", "background": "#263238",
                                        "color": "#eceff1", "padding": "8px", "border-radius": "4px"})
        self.box = pn.Column(self.text, height=520, scroll=True, sizing_mode="stretch_width", view_latest=True)
        self.shown: list[dict[str, Any]] | None = None

    def set_models(self, names: list[str]) -> None:
        if names != list(self.model.options):
            self.model.options = names

    async def _on_change(self, _event: Any) -> None:
        await self.refresh()

    async def _refresh(self) -> None:
        if not self.model.value:
            return
        lines: list[dict[str, Any]]
        lines = await self.source.logs(self.model.value, self.lines.value)
        if lines != self.shown:
            self.shown = lines
            self.text.object = format_lines(lines)

    async def tick(self) -> None:
        """The periodic refresh: skipped while the person has paused following."""
        if self.follow.value:
            await self.refresh()

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.error, pn.Row(self.model, self.lines, self.follow), self.box, sizing_mode="stretch_width")
