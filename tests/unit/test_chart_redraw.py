"""Redrawing the analysis every 30 s in every open session sends only what changed: a chart of the same shape keeps
its figure (none is built) and gets new numbers, another shape builds a new one; a table given the same frame sends
nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_manager.panel_app.charts import ChartPane, hbars, lines, stacked_over_time
from llm_manager.panel_app.widgets import ExportTable

DAYS = pd.date_range("2026-12-01", periods=3, freq="D", tz="UTC")


def usage(models: list[str], scale: float = 1.0, days: pd.DatetimeIndex = DAYS) -> pd.DataFrame:
    rows = [{"time": t, "model": m, "cost": scale * (i + 1) * (j + 1)} for i, m in enumerate(models)
            for j, t in enumerate(days)]
    return pd.DataFrame(rows)


def test_a_chart_of_the_same_shape_gets_new_numbers_in_place() -> None:
    chart = ChartPane()
    chart.show(stacked_over_time(usage(["a", "b"]), "model", "cost", "Cost", "USD", 86400))
    shown, source = chart.object, chart.object.renderers[0].data_source
    later = pd.date_range("2026-12-02", periods=3, freq="D", tz="UTC")  # a day on: the x range follows
    chart.show(stacked_over_time(usage(["a", "b"], scale=2.0, days=later), "model", "cost", "Cost", "USD", 86400))
    assert chart.draws == 1 and chart.object is shown and chart.object.renderers[0].data_source is source
    assert list(source.data["a"]) == [2.0, 4.0, 6.0] and list(source.data["b"]) == [4.0, 8.0, 12.0]
    assert shown.x_range.start == np.datetime64("2026-12-01T09:36")  # the first bar, less 0.6 of a day


def test_another_model_in_the_stack_draws_a_new_chart() -> None:
    chart = ChartPane()
    chart.show(stacked_over_time(usage(["a", "b"]), "model", "cost", "Cost", "USD", 86400))
    shown = chart.object
    chart.show(stacked_over_time(usage(["a", "c"]), "model", "cost", "Cost", "USD", 86400))
    assert chart.draws == 2 and chart.object is not shown
    assert [item.label.value for item in chart.object.legend[0].items] == ["a", "c"]


def test_bars_keep_their_figure_when_only_names_and_values_change() -> None:
    chart = ChartPane()
    chart.show(hbars(pd.DataFrame({"model": ["a", "b"], "cost": [2.0, 1.0]}), "model", "cost", "By", "USD"))
    shown = chart.object
    chart.show(hbars(pd.DataFrame({"model": ["c", "b"], "cost": [5.0, 1.0]}), "model", "cost", "By", "USD"))
    assert chart.object is shown and chart.draws == 1
    assert list(shown.y_range.factors) == ["b", "c"]
    assert list(shown.renderers[0].data_source.data["cost"]) == [1.0, 5.0]
    five = pd.DataFrame({"model": list("abcde"), "cost": [5.0, 4.0, 3.0, 2.0, 1.0]})
    chart.show(hbars(five, "model", "cost", "By", "USD"))
    assert chart.object is not shown and chart.object.height > shown.height  # more bars, a taller chart


def test_unchanged_numbers_send_nothing() -> None:
    frame = pd.DataFrame({"time": DAYS, "actual": [1.0, 2.0, 3.0]})
    chart = ChartPane()
    chart.show(lines(frame, ["actual"], "Burn", "USD"))
    source = chart.object.renderers[0].data_source
    sent: list[str] = []
    source.on_change("data", lambda attr, old, new: sent.append(attr))
    chart.show(lines(frame, ["actual"], "Burn", "USD"))
    assert sent == []
    chart.show(lines(frame.assign(actual=[1.0, 2.0, 4.0]), ["actual"], "Burn", "USD"))
    assert sent == ["data"] and np.array_equal(source.data["actual"], [1.0, 2.0, 4.0]) and chart.draws == 1


def test_data_after_an_empty_range_draws_the_chart() -> None:
    chart = ChartPane()
    chart.show(stacked_over_time(usage([]).reindex(columns=["time", "model", "cost"]), "model", "cost", "Cost",
                                 "USD", 86400))
    assert chart.object.renderers == []
    chart.show(stacked_over_time(usage(["a"]), "model", "cost", "Cost", "USD", 86400))
    assert chart.draws == 2 and len(chart.object.renderers) == 1


def test_a_table_given_the_same_frame_sends_nothing() -> None:
    table = ExportTable("by_model", lambda: "USD")
    frame = pd.DataFrame({"model": ["a", "b"], "requests": [3, 4], "cost": [0.5, 0.25]})
    table.update(frame)
    changes: list[str] = []
    table.table.param.watch(lambda e: changes.append(e.name), ["value", "formatters", "titles", "text_align"])
    table.update(frame.copy())
    assert changes == []
    table.update(frame.assign(requests=[3, 5]))
    assert changes == ["value"]
    assert table.table.value["requests"].tolist() == [3, 5]
