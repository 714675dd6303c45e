"""Shared test helpers: waiting on conditions, free ports, configs with fake-backend models, a manager running
as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]


def chromium_path() -> str | None:
    """Debian's chromium (or $LLM_MANAGER_CHROMIUM) for the browser tests; None when there is none."""
    import shutil

    for candidate in (os.environ.get("LLM_MANAGER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that at once; after ``timeout`` seconds
    return its last (falsy) answer. Tests synchronise on conditions, never on fixed sleeps:
    ``assert wait_until(lambda: ...), "what did not happen"``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """``wait_until`` for a test on the event loop: polls without blocking the loop (whatever the test waits
    for may run on that same loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value or loop.time() >= deadline:
            return value
        await asyncio.sleep(interval)


@contextlib.contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, as every browser test starts it (skips without either)."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium) or $LLM_MANAGER_CHROMIUM")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable,
                                     args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same one twice in this test process: the models of one config get their
    ports before any of them binds, and the OS may hand the same free port out again."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def fake_model(mode: str = "Chat", *, memory: dict[str, int] | None = None, args: list[str] | None = None,
               aliases: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A model block whose launch command runs the fake backend on a free port."""
    port = free_port()
    devices = list((memory or {}).keys())
    block = {
        "aliases": aliases or [],
        "mode": mode,
        "port": port,
        "auto_start": False,
        "command": [sys.executable, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}",
                    "--model", "${MODEL}", *(args or [])],
        "gpu": {"required_devices": devices, "memory_mb": memory or {}},
    }
    block.update(extra)
    return block


def config_doc(models: dict[str, dict[str, Any]], gpus: dict[str, int] | None = None,
               **program: Any) -> dict[str, Any]:
    prog = {"host": "127.0.0.1", "port": 0, "alive_time": 60, "log_level": "INFO", "monitor_interval": 0.5,
            "simulated_devices": [{"name": n, "total_memory_mb": mb} for n, mb in (gpus or {}).items()]}
    prog.update(program)
    return {"program": prog, **models}


class ManagerProcess:
    """``llm-manager serve`` as a real subprocess on a free loopback port."""

    def __init__(self, tmp: Path, doc: dict[str, Any], dashboard: bool = False):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp / "config.json"
        self.config_path.write_text(json.dumps(doc, indent=2))
        self.data_dir = tmp / "data"
        argv = [sys.executable, "-m", "llm_manager.cli", "serve", "--config", str(self.config_path),
                "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if not dashboard:
            argv.append("--no-dashboard")
        self.log_path = tmp / "manager.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.http = httpx.Client(base_url=self.url, timeout=30, trust_env=False)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"manager exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if self.http.get("/api/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"manager not healthy in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def models(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.http.get("/api/models-info").json()["models"]}

    def wait_state(self, model: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            info = self.models()[model]
            return info if info["state"] == state else None

        info = wait_until(reached, timeout, 0.05)
        assert info, f"{model} did not reach {state}: {self.models()[model]}"
        return info

    def launches(self, model: str) -> int:
        lines = self.http.get(f"/api/logs/{model}", params={"lines": 5000}).json()["lines"]
        return sum(1 for x in lines if x["stream"] == "manager" and x["line"].startswith("launch:"))

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # a zombie is dead for our purposes
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        alive.append(pid)
    return alive


class MemoryReply:
    """A pipeline Reply that collects what it is sent (the pipeline driven without HTTP, as the batch runner does)."""

    def __init__(self) -> None:
        self.status = 0
        self.content_type = ""
        self.pieces: list[bytes] = []
        self.whole_body: bytes | None = None
        self.headers: dict[str, str] = {}

    @property
    def started(self) -> bool:
        return bool(self.status)

    async def stream(self, status: int, content_type: str, data: bytes) -> None:
        self.status, self.content_type = status, content_type
        self.pieces.append(data)

    def whole(self, status: int, content_type: str, data: bytes) -> None:
        self.status, self.content_type, self.whole_body = status, content_type, data

    def header(self, name: str, value: str) -> None:
        self.headers[name] = value
