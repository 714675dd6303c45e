"""The sidebar: one set of filters (date range, bucket, models, API keys, endpoints) for every analysis view."""

from __future__ import annotations

import datetime as dt
from typing import Any

import panel as pn

from .analysis import FREQS, Filters

DEFAULT_DAYS = 30
PRESETS = {"Today": 1, "7 d": 7, "30 d": 30, "90 d": 90}


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


class FilterBar:
    """The filter widgets and the :class:`Filters` they describe; ``on_change(callback)`` on any edit."""

    def __init__(self, days: int = DEFAULT_DAYS):
        today = utc_today()
        self.dates = pn.widgets.DateRangePicker(
            name="Date range (UTC days, both included)", value=(today - dt.timedelta(days=days - 1), today),
            sizing_mode="stretch_width", css_classes=["filter-dates"])
        self.presets = [pn.widgets.Button(name=label, button_type="light", sizing_mode="stretch_width",
                                          css_classes=["filter-preset", f"preset-{label.replace(' ', '')}"])
                        for label in PRESETS]
        for button in self.presets:
            button.on_click(lambda _e, label=button.name: self.last(PRESETS[label]))
        self.freq = pn.widgets.RadioButtonGroup(name="Bucket", options=list(FREQS), value="Day",
                                                button_type="primary", button_style="outline",
                                                sizing_mode="stretch_width", css_classes=["filter-freq"])
        self.models = pn.widgets.MultiChoice(name="Models (all when empty)", options=[], sizing_mode="stretch_width",
                                             placeholder="all models", css_classes=["filter-models"])
        self.keys = pn.widgets.MultiChoice(name="API keys (all when empty)", options=[], sizing_mode="stretch_width",
                                           placeholder="all keys", css_classes=["filter-keys"])
        self.endpoints = pn.widgets.MultiChoice(name="Endpoints / protocols (all when empty)", options=[],
                                                sizing_mode="stretch_width", placeholder="all endpoints",
                                                css_classes=["filter-endpoints"])
        self.reset = pn.widgets.Button(name="Clear filters", button_type="light", sizing_mode="stretch_width",
                                       css_classes=["filter-reset"])
        self.refresh = pn.widgets.Button(name="⟳ Reload data", button_type="primary", sizing_mode="stretch_width",
                                         css_classes=["filter-refresh"])
        self.note = pn.pane.HTML("", sizing_mode="stretch_width", styles={"color": "#64748b", "font-size": "12px"})
        self.reset.on_click(self._reset)

    def last(self, days: int) -> None:
        """The last ``days`` UTC days, today included."""
        today = utc_today()
        self.dates.value = (today - dt.timedelta(days=days - 1), today)

    def _reset(self, _event: Any) -> None:
        self.models.value, self.keys.value, self.endpoints.value = [], [], []

    def set_options(self, options: dict[str, list[str]]) -> None:
        """Offer the values present in the loaded rows (and keep what is selected, present or not)."""
        for widget, name in ((self.models, "models"), (self.keys, "keys"), (self.endpoints, "endpoints")):
            values = sorted(set(options.get(name, [])) | set(widget.value))
            if values != list(widget.options):
                widget.options = values

    def filters(self) -> Filters:
        start, end = self.dates.value
        since, until = day_start(start), day_start(end) + 86400
        return Filters(since=since, until=until, models=tuple(self.models.value), keys=tuple(self.keys.value),
                       endpoints=tuple(self.endpoints.value), freq=FREQS[self.freq.value])

    def on_change(self, callback: Any) -> None:
        for w in (self.dates, self.freq, self.models, self.keys, self.endpoints):
            w.param.watch(callback, "value")

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.HTML("<b>Filters</b> — they apply to every analysis tab", styles={"color": "#0f172a"}),
            self.dates, pn.Row(*self.presets, sizing_mode="stretch_width"), pn.pane.HTML("<small>Bucket of the charts over time</small>"), self.freq,
            self.models, self.keys, self.endpoints, pn.Row(self.reset, self.refresh, sizing_mode="stretch_width"),
            self.note, sizing_mode="stretch_width")
