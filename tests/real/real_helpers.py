"""Process helpers for the real-server tests and the benchmark: find, kill and launch llama-servers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx


def llama_pids(ports: set[int], server: Path) -> list[int]:
    """Pids of llama-server processes listening on one of ``ports`` (found by their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if not args or not args[0].endswith(server.name) or "--port" not in args:
            continue
        with contextlib.suppress(ValueError, IndexError):
            if int(args[args.index("--port") + 1]) in ports:
                pids.append(int(entry.name))
    return pids


def kill_pids(pids: list[int]) -> None:
    """SIGKILL these pids (ours, by id), ignoring the ones already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class DirectServer:
    """A server process launched by the test itself, its /health polled from the first instant."""

    def __init__(self, argv: list[str], port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log = log.open("w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.loading: list[tuple[int, dict]] = []  # non-200 health answers seen before the first 200
        self.healthy_after: float | None = None

    def wait_healthy(self, timeout: float = 60.0, interval: float = 0.002) -> None:
        """Poll /health at once and often, recording the 503s of the loading phase."""
        deadline = self.t0 + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.proc.args[0]} exited {self.proc.returncode}: "
                                       f"{self.log.read_text()[-2000:]}")
                try:
                    r = c.get(self.url + "/health")
                except httpx.TransportError:
                    time.sleep(interval)
                    continue
                if r.status_code == 200:
                    self.healthy_after = time.monotonic() - self.t0
                    return
                self.loading.append((r.status_code, r.json()))
                time.sleep(interval)
        raise RuntimeError(f"{self.url} not healthy within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
