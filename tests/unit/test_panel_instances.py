"""The models view's instances and upstreams table, from models-info entries with and without scale-out."""

from __future__ import annotations

from llm_manager.panel_app.views.instances import InstancesTable, instance_rows, scale_notes

SCALED = {
    "name": "demo-chat", "state": "ready", "max_instances": 4, "fallbacks": ["small-chat"],
    "instances": [{"id": "demo-chat#1", "instance": 1, "port": 8081, "state": "ready", "pid": 123, "profile": "gpu1",
                   "in_flight": 2, "uptime_s": 12.0, "last_error": None},
                  {"id": "demo-chat#2", "instance": 2, "port": 8082, "state": "starting", "pid": 124,
                   "profile": "gpu2", "in_flight": 0, "uptime_s": None, "last_error": "<boom>"}],
    "upstreams": [{"id": "api.example.com", "url": "https://api.example.com/v1", "healthy": True, "cooling_s": 0.0,
                   "in_flight": 1, "failures": 0, "last_error": None},
                  {"id": "b.example.com", "url": "https://b.example.com/v1", "healthy": True, "cooling_s": 30.0,
                   "in_flight": 0, "failures": 3, "last_error": "timeout"}],
}
PLAIN = {"name": "embed", "state": "stopped"}


def test_each_instance_and_upstream_is_a_row() -> None:
    rows = instance_rows([SCALED, PLAIN])
    assert rows[["model", "kind", "id"]].values.tolist() == [
        ["demo-chat", "instance", "demo-chat#1"], ["demo-chat", "instance", "demo-chat#2"],
        ["demo-chat", "upstream", "api.example.com"], ["demo-chat", "upstream", "b.example.com"]]
    first = rows.iloc[0]
    assert first["where"] == "port 8081" and first["pid / profile"] == "123 / gpu1" and first["uptime"] == "12 s"
    assert ">ready<" in first["status"] and rows.iloc[1]["error"] == "&lt;boom&gt;"  # escaped, never raw HTML
    assert ">healthy<" in rows.iloc[2]["status"] and ">cooling 30 s<" in rows.iloc[3]["status"]
    assert rows.iloc[3]["failures"] == 3
    assert scale_notes([SCALED, PLAIN]) == ("<b>demo-chat</b>: 1 of at most 4 instances ready; "
                                            "falls back to small-chat")


def test_hidden_without_scale_out() -> None:
    table = InstancesTable()
    table.update([PLAIN])
    assert not table.panel.visible and table.table.value.empty
    table.update([SCALED, PLAIN])
    assert table.panel.visible and len(table.table.value) == 4 and "4 instances" in table.notes.object
