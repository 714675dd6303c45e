"""The models view's instances and upstreams table, from models-info entries with and without scale-out."""

from __future__ import annotations

from llm_manager.panel_app.views.instances import NONE, InstancesTable, instance_rows, scale_notes

SCALED = {
    "name": "demo-chat", "state": "ready", "max_instances": 4, "fallbacks": ["small-chat"],
    "instances": [{"id": "demo-chat#1", "instance": 1, "port": 8081, "state": "ready", "pid": 123, "profile": "gpu1",
                   "devices": ["gpu0", "gpu1"], "in_flight": 2, "uptime_s": 12.0, "last_error": None},
                  {"id": "demo-chat#2", "instance": 2, "port": 8082, "state": "starting", "pid": 124,
                   "profile": "gpu2", "in_flight": 0, "uptime_s": None, "last_error": "<boom>"}],
    "upstreams": [{"id": "api.example.com", "url": "https://api.example.com/v1", "healthy": True, "cooling_s": 0.0,
                   "in_flight": 1, "failures": 0, "last_error": None},
                  {"id": "b.example.com", "url": "https://b.example.com/v1", "healthy": True, "cooling_s": 30.0,
                   "in_flight": 0, "failures": 3, "last_error": "timeout"}],
}
PLAIN = {"name": "embed", "state": "stopped"}
ONE = {"name": "rerank", "state": "ready", "max_instances": 1, "fallbacks": [], "upstreams": [],
       "instances": [{"id": "rerank", "port": 8090, "state": "ready", "pid": 7, "profile": "cpu", "in_flight": 0}]}


def test_each_instance_and_upstream_is_a_row() -> None:
    rows = instance_rows([SCALED, PLAIN])
    assert rows[["model", "kind", "id"]].values.tolist() == [
        ["demo-chat", "instance", "demo-chat#1"], ["demo-chat", "instance", "demo-chat#2"],
        ["demo-chat", "upstream", "api.example.com"], ["demo-chat", "upstream", "b.example.com"]]
    first = rows.iloc[0]
    assert first["where"] == "port 8081 on gpu0, gpu1" and rows.iloc[1]["where"] == "port 8082" and first["pid / profile"] == "123 / gpu1" and first["uptime"] == "< 1 min"
    assert ">ready<" in first["status"] and rows.iloc[1]["error"] == "&lt;boom&gt;"  # escaped, never raw HTML
    assert ">healthy<" in rows.iloc[2]["status"] and ">cooling 30 s<" in rows.iloc[3]["status"]
    assert rows.iloc[3]["failures"] == 3
    assert scale_notes([SCALED, PLAIN]) == ("<b>demo-chat</b>: 1 of at most 4 instances ready; "
                                            "falls back to small-chat")


def test_hidden_without_scale_out() -> None:
    """A model with one instance and nothing else would only repeat its row of the models table: the table stays
    empty (on the page, never toggled: see the module) and says why."""
    table = InstancesTable()
    table.update([PLAIN, ONE])
    assert not table.scaling and table.table.value.empty and table.notes.object == NONE
    table.update([SCALED, PLAIN, ONE])
    assert table.scaling and len(table.table.value) == 4 and "4 instances" in table.notes.object
    assert "rerank" not in table.table.value["model"].tolist()
    upstream_only = {"name": "remote", "state": "ready", "max_instances": 0, "instances": [],
                     "upstreams": SCALED["upstreams"][:1]}
    table.update([upstream_only, ONE])
    assert table.scaling and table.table.value["kind"].tolist() == ["upstream"]
    assert table.panel.visible
