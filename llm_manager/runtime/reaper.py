"""No orphans: model process groups die with the manager, however the manager dies.

Three layers, because each alone has a hole:
- PR_SET_PDEATHSIG kills the launched process when the manager dies (not its grandchildren);
- a guardian process (``python -m llm_manager.runtime.reaper``) holds a pipe from the manager and, when the
  pipe closes (the manager exited or was SIGKILLed), kills every process group it was told about;
- a pid file in the data dir lets the next start reap groups left behind if the guardian died too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1


def set_pdeathsig() -> None:
    """preexec_fn: ask the kernel to SIGKILL this child when its parent dies (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Reaper:
    """The manager's side: tells the guardian and the pid file which process groups are ours."""

    def __init__(self, pid_file: Path | None):
        self.pid_file = pid_file
        self.groups: dict[int, float] = {}  # pgid -> leader's create_time
        self._guardian: subprocess.Popen | None = None

    def start(self) -> list[int]:
        """Reap what a previous manager left behind, then start the guardian. Returns reaped pgids."""
        reaped = self.reap_stale()
        try:
            self._guardian = subprocess.Popen(
                [sys.executable, "-m", "llm_manager.runtime.reaper"], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            )
        except OSError:
            self._guardian = None
        return reaped

    def _tell(self, line: str) -> None:
        if self._guardian is not None and self._guardian.stdin is not None:
            try:
                self._guardian.stdin.write(line.encode() + b"\n")
                self._guardian.stdin.flush()
            except (BrokenPipeError, OSError):
                self._guardian = None

    def add(self, pid: int) -> None:
        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            created = 0.0
        self.groups[pid] = created
        self._tell(f"+{pid}")
        self._save()

    def remove(self, pid: int) -> None:
        self.groups.pop(pid, None)
        self._tell(f"-{pid}")
        self._save()

    def _save(self) -> None:
        if self.pid_file is None:
            return
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"manager_pid": os.getpid(), "groups": self.groups}))
        tmp.replace(self.pid_file)

    def reap_stale(self) -> list[int]:
        """Kill process groups recorded by a manager that is no longer running."""
        if self.pid_file is None or not self.pid_file.exists():
            return []
        try:
            data = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return []
        owner = int(data.get("manager_pid", 0))
        if owner and owner != os.getpid() and psutil.pid_exists(owner):
            return []  # another live manager owns these
        reaped = []
        for pgid_s, created in data.get("groups", {}).items():
            pgid = int(pgid_s)
            try:
                same = abs(psutil.Process(pgid).create_time() - float(created)) < 1.0
            except psutil.Error:
                same = False  # the leader is gone; its group may still have members
            if same or not psutil.pid_exists(pgid):
                if kill_group(pgid):
                    reaped.append(pgid)
        self.pid_file.unlink(missing_ok=True)
        return reaped

    def close(self) -> None:
        """Clean shutdown: the manager already stopped its models; let the guardian go."""
        self.groups.clear()
        self._save()
        if self._guardian is not None:
            with contextlib.suppress(OSError):
                self._guardian.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._guardian.wait(timeout=2)
            self._guardian = None
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def _guardian_main() -> int:
    """Read +pgid / -pgid lines until EOF, then SIGTERM, wait briefly, and SIGKILL every group left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the manager, which stops models itself
    groups: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.decode(errors="replace").strip()
        if line[:1] == "+" and line[1:].isdigit():
            groups.add(int(line[1:]))
        elif line[:1] == "-" and line[1:].isdigit():
            groups.discard(int(line[1:]))
    alive = [g for g in groups if kill_group(g, signal.SIGTERM)]
    deadline = time.monotonic() + 2.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [g for g in alive if kill_group(g, 0)]
    for g in alive:
        kill_group(g, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(_guardian_main())
