"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, against real fake-backend processes.

Each notebook starts its demo with ``start_demo()``, which writes the config it runs (ports included) into a fresh
directory under $LLM_MANAGER_DATA_DIR; after the run those ports must be free again: no model process left behind.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import nbformat
import pytest
from helpers import wait_until
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def demo_ports(data_dir: Path) -> list[int]:
    """The model ports of every demo the notebook started (from the config each one wrote)."""
    ports = []
    for cfg in data_dir.glob("*/config.json"):
        doc = json.loads(cfg.read_text())
        ports += [b["port"] for k, b in doc.items() if k != "program" and isinstance(b, dict) and "port" in b]
    return ports


def test_notebooks_are_stored_clean_and_close_their_demo():
    assert len(PATHS) >= 3
    for path in PATHS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has stored outputs"
        assert "await demo.close()" in code[-1].source, f"{path.name} must end by closing its demo"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_and_leaves_no_model_process(path: Path, tmp_path: Path):
    data_dir = tmp_path / "data"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(cwd=str(NOTEBOOKS), env={**os.environ, "LLM_MANAGER_DATA_DIR": str(data_dir)})
    ports = demo_ports(data_dir)
    assert ports, "the notebook started no demo (no config.json under LLM_MANAGER_DATA_DIR)"
    wait_until(lambda: all(port_free(p) for p in ports), timeout=10, interval=0.2)
    busy = [p for p in ports if not port_free(p)]
    assert not busy, f"model ports still answering after {path.name}: {busy}"
