"""The what-if planner: what starting a model would do now (profile, evictions, memory per device) without acting.

It shows the manager's own plan (the answer of ``/api/plan/{model}`` and ``llm-manager plan``), so the three
never disagree; for a model that already runs that plan says where it runs. ``plan()`` samples devices (in a
worker thread), so it runs when the person asks, never on a timer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from .base import View

DEVICE_COLUMNS = ["device", "needed MB", "free before MB", "free after MB", "held by", "online"]


def plan_rows(plan: dict[str, Any]) -> pd.DataFrame:
    rows = [{"device": d["name"], "needed MB": d["needed_mb"], "free before MB": d["free_before_mb"],
             "free after MB": d["free_after_mb"], "held by": ", ".join(d.get("holders") or []) or "—",
             "online": "yes" if d.get("online", True) else "no"} for d in plan.get("devices", [])]
    return pd.DataFrame(rows, columns=DEVICE_COLUMNS)


def plan_summary(plan: dict[str, Any]) -> tuple[str, str]:
    """(markdown, alert type): the answer in one sentence a person can act on."""
    name = plan.get("model", "?")
    if plan.get("running"):
        return f"**{name}** is {plan.get('reason', '')}.", "info"
    if not plan.get("fits"):
        return f"**{name} cannot start now.** {plan.get('reason', '')}", "danger"
    text = f"**{name}** would start with profile **{plan.get('profile')}**."
    if plan.get("evict"):
        return text + f" It would first evict (idle, least recently used): **{', '.join(plan['evict'])}**.", "warning"
    return text + " Nothing needs to be evicted.", "success"


class PlannerView(View):
    title = "What-if planner"

    def __init__(self, source: Any):
        super().__init__(source)
        self.plan: dict[str, Any] | None = None
        self.model = pn.widgets.Select(label="If I start…", options=[], width=260)
        self.button = pn.widgets.Button(label="Plan", color="primary", width=90, align="end")
        self.button.on_click(self._on_click)
        self.model.param.watch(self._on_click, "value")
        self.summary = pn.pane.Alert("Pick a model to see what starting it would do.", alert_type="light",
                                     sizing_mode="stretch_width")
        self.devices = pn.widgets.Tabulator(pd.DataFrame(columns=DEVICE_COLUMNS), disabled=True, show_index=False,
                                            sizing_mode="stretch_width", layout="fit_data_stretch",
                                            sortable=False)

    def set_models(self, models: list[dict[str, Any]]) -> None:
        """Keep the model list in step with the models table (cheap; called on each models refresh)."""
        names = [m["name"] for m in models]
        if names != list(self.model.options):
            self.model.options = names

    async def _on_click(self, _event: Any = None) -> None:
        await self.refresh()

    async def _refresh(self) -> None:
        name = self.model.value
        if not name:
            return
        self.plan = await self.source.plan(name)
        text, kind = plan_summary(self.plan)
        self.summary.object, self.summary.alert_type = text, kind
        self.devices.value = plan_rows(self.plan)
        self.devices.visible = True

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown("### What-if planner"), self.error,
                         pn.Row(self.model, self.button), self.summary, self.devices, sizing_mode="stretch_width")
