"""The systems under test: llm-manager (optionally with a start-up tweak or from another checkout) and LiteLLM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from harness import (
    BENCH,
    CLIENT_CORE,
    COLD_LOAD_DELAY,
    MANAGER_CORE,
    PY,
    ROOT,
    STREAM_TPS,
    free_port,
    http_get,
    http_post,
    pin,
    rss_mb,
    stop_proc,
    wait_http,
)

LITELLM_VENV = BENCH / ".venv-litellm"

TWEAKS = {  # (the third one measured this way, gc.freeze after start-up, is in cli.py since)
    "quiet-access": "tornado.access logger at WARNING: no INFO line per request (errors still logged)",
    "uvloop": "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()) before asyncio.run",
    "httpcore": "httpx's default transport (httpcore's pool) to upstreams instead of llm_manager.gateway.upstream's",
}
TWEAK_BOOT = """
import asyncio, logging, os, sys
tweaks = set(os.environ.get("BENCH_TWEAKS", "").split(","))
if "quiet-access" in tweaks:
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
if "uvloop" in tweaks:
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
if "httpcore" in tweaks:
    import httpx
    import llm_manager.runtime.manager
    llm_manager.runtime.manager.make_client = lambda: httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(600.0, connect=5.0),
                                                               limits=httpx.Limits(max_connections=None,
                                                                                   max_keepalive_connections=1024))
from llm_manager.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Manager:
    """``llm-manager serve`` with three fake-backend models, pinned to its own core."""

    def __init__(self, tmp: Path, tweaks: tuple[str, ...] = (), launcher: list[str] | None = None,
                 root: Path = ROOT):
        """``root``: the checkout whose ``llm_manager`` runs (another git worktree, to compare commits)."""
        self.tmp = tmp
        self.port = free_port()
        self.ports = {"bench-fast": free_port(), "bench-stream": free_port(), "bench-cold": free_port()}
        backend = [PY, "-m", "llm_manager.testing.fake_backend", "--port", "${PORT}", "--model", "${MODEL}",
                   "--fast", "--quiet"]
        extra = {"bench-fast": [], "bench-stream": ["--tokens-per-second", str(STREAM_TPS)],
                 "bench-cold": ["--load-delay", str(COLD_LOAD_DELAY)]}
        models = {name: {"aliases": [], "mode": "Chat", "port": port, "auto_start": False,
                         "command": pin(CLIENT_CORE, backend + extra[name]),
                         "gpu": {"required_devices": [], "memory_mb": {}}}
                  for name, port in self.ports.items()}
        doc = {"program": {"host": "127.0.0.1", "port": self.port, "alive_time": 0, "monitor_interval": 0.5},
               **models}
        self.config = tmp / "config.json"
        self.config.write_text(json.dumps(doc, indent=2))
        self.log_path = tmp / "manager.log"
        self._log = self.log_path.open("w")
        serve = ["serve", "--config", str(self.config), "--host", "127.0.0.1", "--port", str(self.port),
                 "--no-dashboard", "--data-dir", str(tmp / "data")]
        launcher_override, launcher = launcher, ["-m", "llm_manager.cli"]
        if tweaks:  # the same CLI with the start-up changes proposed for cli.py (see TWEAKS)
            launcher = ["-c", TWEAK_BOOT]
        argv = pin(MANAGER_CORE, [PY, *(launcher_override or launcher), *serve])
        self.proc = subprocess.Popen(argv, cwd=root, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_TWEAKS": ",".join(tweaks)})
        try:
            wait_http(self.port, "/api/health", 60, self.proc, poll=0.05)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_path.read_text()[-3000:]}") from None

    def start_model(self, name: str) -> None:
        status, body, _ = http_post(self.port, f"/api/models/{name}/start")
        if status not in (200, 202):
            raise RuntimeError(f"starting {name}: HTTP {status} {body[:300]!r}")
        self.wait_state(name, "ready")

    def state(self, name: str) -> str:
        models = json.loads(http_get(self.port, "/api/models-info")[1])["models"]
        return next(m["state"] for m in models if m["name"] == name)

    def wait_state(self, name: str, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.state(name)) != state:
            if time.monotonic() > deadline or now == "failed":
                raise RuntimeError(f"{name} is {now}, not {state}: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop_model(self, name: str) -> None:
        status, body, _ = http_post(self.port, f"/api/models/{name}/stop")
        if status not in (200, 202):
            raise RuntimeError(f"stopping {name}: HTTP {status} {body[:300]!r}")
        self.wait_state(name, "stopped")

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        stop_proc(self.proc, 20)
        self._log.close()


LITELLM_CONFIG = """model_list:
{entries}
litellm_settings:
  drop_params: true
  telemetry: false
general_settings:
  master_key: sk-bench
"""


def ensure_litellm() -> tuple[Path | None, str]:
    """The litellm CLI in bench/.venv-litellm, installing it on first use; (path, why not)."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe, ""
    print(f"installing litellm[proxy] into {LITELLM_VENV.relative_to(ROOT)} (first use; a few minutes) ...", flush=True)
    try:
        subprocess.run([PY, "-m", "venv", str(LITELLM_VENV)], check=True, capture_output=True, timeout=300)
        (LITELLM_VENV / ".gitignore").write_text("*\n")  # the venv ignores itself
        pip = subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                             capture_output=True, text=True, timeout=1500)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the virtualenv: {exc}"
    if pip.returncode != 0 or not exe.exists():
        return None, f"pip install 'litellm[proxy]' failed: {(pip.stderr or pip.stdout)[-400:].strip()}"
    return exe, ""


class LiteLLM:
    def __init__(self, exe: Path, tmp: Path, backends: dict[str, int]):
        self.port = free_port()
        entries = "\n".join(
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-none"
            for name, port in backends.items())
        cfg = tmp / "litellm.yaml"
        cfg.write_text(LITELLM_CONFIG.format(entries=entries))
        self.log_path = tmp / "litellm.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
               "LITELLM_TELEMETRY": "False", "PYTHONUNBUFFERED": "1", "NO_PROXY": "*"}
        env.pop("DATABASE_URL", None)
        argv = pin(MANAGER_CORE, [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(self.port),
                                  "--num_workers", "1"])
        self.proc = subprocess.Popen(argv, cwd=tmp, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        try:
            wait_http(self.port, "/health/liveliness", 180, self.proc, poll=0.2)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; last log lines: {self.log_path.read_text()[-600:].strip()}") from None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def pids(self) -> list[int]:
        import psutil

        try:
            return [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return [self.proc.pid]

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with_group = getattr(os, "killpg", None)
                if with_group and self.proc.poll() is None:
                    os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
