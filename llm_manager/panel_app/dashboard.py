"""The Panel dashboard (placeholder until the dashboard views land): a live models table."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn


def create_dashboard(manager: Any) -> pn.viewable.Viewable:
    table = pn.widgets.Tabulator(pd.DataFrame(manager.models_info())[["name", "mode", "state", "profile", "port"]],
                                 disabled=True, sizing_mode="stretch_width")

    def refresh() -> None:
        table.value = pd.DataFrame(manager.models_info())[["name", "mode", "state", "profile", "port"]]

    pn.state.add_periodic_callback(refresh, period=1000)
    return pn.Column("# llm-manager", table)
