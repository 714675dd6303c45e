"""The node registry (issue 17): managers on one PostgreSQL database each write a heartbeat; /api/cluster on any of
them lists every node with its models, devices and last-seen time, and a node not seen for three heartbeats is down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from helpers import ManagerProcess, config_doc, fake_model, wait_until

ADMIN = "admin-nodes"


def cluster(node: ManagerProcess) -> dict[str, dict]:
    return {n["name"]: n for n in node.http.get("/api/cluster").json()["nodes"]}


def test_three_nodes_see_each_other_and_a_killed_one_goes_down(tmp_path: Path, pg_database: str) -> None:
    nodes: list[ManagerProcess] = []
    try:
        for name, model in (("alpha", "chat-a"), ("beta", "chat-b"), ("gamma", "chat-c")):
            doc = config_doc({model: fake_model()}, {"gpu0": 24000}, admin_key=ADMIN, database_url=pg_database,
                             node_name=name)
            (tmp_path / name).mkdir()
            node = ManagerProcess(tmp_path / name, doc)
            node.http.headers["Authorization"] = f"Bearer {ADMIN}"
            nodes.append(node)
        alpha, beta, gamma = nodes
        assert wait_until(lambda: len(cluster(alpha)) == 3 and all(n["up"] for n in cluster(alpha).values()), 20)
        seen = cluster(beta)
        assert {n: [m["name"] for m in v["models"]] for n, v in seen.items()} == {
            "alpha": ["chat-a"], "beta": ["chat-b"], "gamma": ["chat-c"]}
        assert seen["gamma"]["url"] == gamma.url and seen["beta"]["self"] and not seen["alpha"]["self"]
        gpu = next(d for d in seen["alpha"]["devices"] if d["name"] == "gpu0")
        assert gpu["online"] and gpu["total_mb"] == 24000 and gpu["free_mb"] == 24000
        assert beta.http.get("/api/cluster").json()["node"] == "beta"
        os.kill(gamma.proc.pid, signal.SIGKILL)  # no goodbye: only its silence tells
        killed = time.monotonic()
        assert wait_until(lambda: not cluster(alpha)["gamma"]["up"], 15)
        assert time.monotonic() - killed >= 3  # not before a heartbeat or two were missed
        assert cluster(alpha)["beta"]["up"] and cluster(beta)["alpha"]["up"]
        assert alpha.http.get("/api/cluster", headers={"Authorization": ""}).status_code == 401
    finally:
        for node in nodes:
            node.stop()
