"""Config: the loaded config, read-only, with program secrets (keys, database URL) shown as ***."""

from __future__ import annotations

from typing import Any

import panel as pn

from .base import View


class ConfigView(View):
    title = "Config"
    period_ms = 0  # no timer: the config changes only on restart; the button reloads it

    def __init__(self, source: Any):
        super().__init__(source)
        self.config: dict[str, Any] = {}
        self.json = pn.pane.JSON({}, depth=2, theme="light", sizing_mode="stretch_width")
        self.reload = pn.widgets.Button(label="Reload", width=90)
        self.reload.on_click(self._on_reload)

    async def _on_reload(self, _event: Any) -> None:
        await self.refresh()

    async def _refresh(self) -> None:
        self.config = await self.source.config()
        self.json.object = self.config

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.error, pn.Row(pn.pane.Markdown("Read-only; secrets redacted."), self.reload), self.json,
                         sizing_mode="stretch_width")
