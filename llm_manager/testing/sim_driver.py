"""The simulated GPUs' "driver table": what each process really holds, as a real driver would know it.

A real GPU's driver knows every process's allocation (NVML's per-process memory). A simulated GPU has no driver, so
a process that wants to hold a footprint of its own (the fake backend's ``--footprint-mb N``) registers it here: one
small JSON file per process in a directory shared by everyone on the machine (``LLM_MANAGER_SIM_DIR``, default a
per-user folder under the temp dir). The simulated device plugin reads the table. An entry names the pid and the
process's start time, so a stale file of a dead process whose pid was reused is never believed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def table_dir() -> Path:
    """Where the entries live: ``$LLM_MANAGER_SIM_DIR``, else ``<tmp>/llm-manager-sim-<uid>``."""
    return Path(os.environ.get("LLM_MANAGER_SIM_DIR") or Path(tempfile.gettempdir()) / f"llm-manager-sim-{os.getuid()}")


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), "" when unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return raw.rsplit(")", 1)[-1].split()[19] if ")" in raw else ""


def register(mb: int, pid: int | None = None) -> Path:
    """Say that this process (``pid``, default ours) holds ``mb`` MB on each device it was placed on (0 while it
    sleeps). Written atomically: a reader sees the old entry or the new one."""
    pid = pid or os.getpid()
    folder = table_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}.json"
    tmp = folder / f".{pid}.json.tmp"
    tmp.write_text(json.dumps({"pid": pid, "start": start_time(pid), "mb": int(mb)}))
    os.replace(tmp, path)
    return path


def unregister(pid: int | None = None) -> None:
    with contextlib.suppress(OSError):
        (table_dir() / f"{pid or os.getpid()}.json").unlink()


def footprints() -> dict[int, int]:
    """Process group -> MB its live registered processes hold (a model process leads its own group, so the
    manager matches a model by its group: a launcher script's child counts for the model)."""
    out: dict[int, int] = {}
    folder = table_dir()
    try:
        entries = list(folder.glob("*.json"))
    except OSError:
        return out
    for path in entries:
        try:
            entry = json.loads(path.read_text())
            pid, mb = int(entry["pid"]), int(entry["mb"])
            if entry.get("start") and entry["start"] != start_time(pid):
                continue  # a dead process's entry, its pid reused (or gone: start_time is "")
            group = os.getpgid(pid)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out[group] = out.get(group, 0) + mb
    return out
