"""Redrawing the analysis every 30 s in every open session sends only what changed: a chart of the same shape keeps
its Bokeh models and gets new numbers, another shape replaces it; a table given the same frame sends nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn

from llm_manager.panel_app.widgets import ExportTable, hbars, lines, show_chart, stacked_over_time

DAYS = pd.date_range("2026-12-01", periods=3, freq="D", tz="UTC")


def usage(models: list[str], scale: float = 1.0) -> pd.DataFrame:
    rows = [{"time": t, "model": m, "cost": scale * (i + 1) * (j + 1)} for i, m in enumerate(models)
            for j, t in enumerate(DAYS)]
    return pd.DataFrame(rows)


def test_a_chart_of_the_same_shape_gets_new_numbers_in_place() -> None:
    pane = pn.pane.Bokeh()
    show_chart(pane, stacked_over_time(usage(["a", "b"]), "model", "cost", "Cost", "USD", 86400))
    shown, source = pane.object, pane.object.renderers[0].data_source
    show_chart(pane, stacked_over_time(usage(["a", "b"], scale=2.0), "model", "cost", "Cost", "USD", 86400))
    assert pane.object is shown and pane.object.renderers[0].data_source is source
    assert list(source.data["a"]) == [2.0, 4.0, 6.0] and list(source.data["b"]) == [4.0, 8.0, 12.0]


def test_another_model_in_the_stack_replaces_the_chart() -> None:
    pane = pn.pane.Bokeh()
    show_chart(pane, stacked_over_time(usage(["a", "b"]), "model", "cost", "Cost", "USD", 86400))
    shown = pane.object
    new = stacked_over_time(usage(["a", "c"]), "model", "cost", "Cost", "USD", 86400)
    show_chart(pane, new)
    assert pane.object is new and pane.object is not shown


def test_bars_keep_their_figure_when_only_names_and_values_change() -> None:
    pane = pn.pane.Bokeh()
    show_chart(pane, hbars(pd.DataFrame({"model": ["a", "b"], "cost": [2.0, 1.0]}), "model", "cost", "By", "USD"))
    shown = pane.object
    show_chart(pane, hbars(pd.DataFrame({"model": ["c", "b"], "cost": [5.0, 1.0]}), "model", "cost", "By", "USD"))
    assert pane.object is shown
    assert list(shown.y_range.factors) == ["b", "c"]
    assert list(shown.renderers[0].data_source.data["cost"]) == [1.0, 5.0]
    five = pd.DataFrame({"model": list("abcde"), "cost": [5.0, 4.0, 3.0, 2.0, 1.0]})
    show_chart(pane, hbars(five, "model", "cost", "By", "USD"))
    assert pane.object is not shown and pane.object.height > shown.height  # more bars, a taller chart


def test_unchanged_numbers_send_nothing() -> None:
    frame = pd.DataFrame({"time": DAYS, "actual": [1.0, 2.0, 3.0]})
    pane = pn.pane.Bokeh()
    show_chart(pane, lines(frame, ["actual"], "Burn", "USD"))
    source = pane.object.renderers[0].data_source
    sent: list[str] = []
    source.on_change("data", lambda attr, old, new: sent.append(attr))
    show_chart(pane, lines(frame, ["actual"], "Burn", "USD"))
    assert sent == []
    show_chart(pane, lines(frame.assign(actual=[1.0, 2.0, 4.0]), ["actual"], "Burn", "USD"))
    assert sent == ["data"] and np.array_equal(source.data["actual"], [1.0, 2.0, 4.0])


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
