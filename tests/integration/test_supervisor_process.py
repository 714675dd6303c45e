"""The supervisor's state machine driving a real (tiny) model process: start → ready → stop, a start that exits or
never gets healthy, a crash while ready, a stop during a start, SIGTERM ignored, and the health-path fallback.

The model is a few lines of Python's http.server (``SERVER``), so each launch costs one interpreter start. The
transitions that need no process are in tests/unit/test_supervisor_states.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, pids_alive, wait_until_async

from llm_manager.config.parse import Config, ModelConfig, Profile, ProgramConfig
from llm_manager.errors import StartFailed, Unavailable
from llm_manager.runtime.model_logs import ModelLog
from llm_manager.runtime.supervisor import State, Supervisor

S = State

SERVER = r"""
import http.server, os, signal, sys, time

mode = sys.argv[1]
if mode == "fail":
    print("cannot load the model", flush=True)
    sys.exit(4)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "slow":
    time.sleep(60)  # a model that loads for longer than any test waits: the behaviour under test


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200
        if mode == "unhealthy":
            code = 503
        elif mode == "no-health" and self.path == "/health":
            code = 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("listening on", os.environ["PORT"], flush=True)
server.serve_forever()
"""


class Recorder:
    """A supervisor of ``SERVER <mode>`` whose every reported change is kept as (kind, state at the time)."""

    def __init__(self, tmp_path: Path, mode: str, **model: object):
        profile = Profile("p", (), {}, command=(sys.executable, "-c", SERVER, mode))
        self.model = ModelConfig(name="m", mode="Chat", port=free_port(), profiles=(profile,), **model)  # type: ignore[arg-type]
        config = Config(program=ProgramConfig(), models={"m": self.model}, base_dir=tmp_path)
        self.changes: list[tuple[str, str]] = []
        self.sup = Supervisor(self.model, config, ModelLog("m", None), None,
                              lambda s, kind, _detail: self.changes.append((kind, s.state.value)))

    def start(self) -> asyncio.Task:
        return self.sup.begin_start(self.model.profiles[0])

    async def launched_pid(self) -> int:
        assert await wait_until_async(lambda: self.sup.proc is not None), "nothing was launched"
        assert self.sup.proc is not None
        return self.sup.proc.pid

    def output(self) -> list[str]:
        return [x.line for x in self.sup.log.tail(100) if x.stream != "manager"]


@pytest.fixture
def recorders():
    made: list[Recorder] = []

    def make(tmp_path: Path, mode: str, **model: object) -> Recorder:
        made.append(Recorder(tmp_path, mode, **model))
        return made[-1]

    yield make
    for rec in made:  # never leave a model process behind, whatever the test did
        if rec.sup.proc is not None and rec.sup.proc.returncode is None:
            os.killpg(rec.sup.proc.pid, signal.SIGKILL)


async def test_start_ready_stop_and_start_again(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "ok")
    task = rec.start()
    assert rec.sup.state == S.STARTING and rec.sup.info()["start_elapsed_s"] is not None
    await task
    pid = rec.sup.pid
    assert rec.sup.state == S.READY and pid is not None and pids_alive([pid]) == [pid]
    info = rec.sup.info()
    assert info["state"] == "ready" and info["pid"] == pid and info["uptime_s"] >= 0 and info["last_error"] is None
    assert f"listening on {rec.model.port}" in rec.output()
    await rec.sup.stop("done")
    assert rec.sup.state == S.STOPPED and rec.sup.pid is None and rec.sup.proc is None
    assert pids_alive([pid]) == []
    assert rec.changes == [("start", "starting"), ("ready", "ready"), ("stopping", "stopping"), ("stop", "stopped")]

    await rec.start()  # stopped → starting again, a new process
    assert rec.sup.state == S.READY and rec.sup.pid not in (None, pid)
    await rec.sup.stop()
    assert rec.sup.state == S.STOPPED and rec.sup.crashes == 0 and rec.sup.restarts == 0


async def test_a_process_that_exits_while_starting_fails_with_its_output(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "fail")
    with pytest.raises(StartFailed, match="exited with code 4 while starting; last output: cannot load the model"):
        await rec.start()
    assert rec.sup.state == S.FAILED and rec.sup.crashes == 1 and rec.sup.pid is None
    assert rec.changes == [("start", "starting"), ("fail", "failed")]
    rec.sup.check_backoff()  # one failure: no back-off yet
    with pytest.raises(StartFailed):
        await rec.start()  # failed → starting → failed
    with pytest.raises(Unavailable, match="failed 2 times in a row") as exc:
        rec.start()
    assert exc.value.headers["Retry-After"] == "2"
    assert rec.changes == [("start", "starting"), ("fail", "failed")] * 2


async def test_every_waiter_shares_the_one_start_and_its_error(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "fail")
    task = rec.start()
    results = await asyncio.gather(*(rec.sup.wait_ready() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, StartFailed) and "exited with code 4" in r.message for r in results), results
    assert task.exception() is results[0]
    assert rec.changes == [("start", "starting"), ("fail", "failed")]  # one launch for all of them


async def test_a_start_that_never_gets_healthy_times_out_and_kills_the_process(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "unhealthy", start_timeout=0.5)
    task = rec.start()
    pid = await rec.launched_pid()
    with pytest.raises(StartFailed, match="did not become healthy within 0.5 s"):
        await task
    assert rec.sup.state == S.FAILED and rec.sup.proc is None and pids_alive([pid]) == []
    assert rec.changes == [("start", "starting"), ("fail", "failed")]


async def test_a_crash_while_ready_is_failed_then_restarts(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "ok")
    await rec.start()
    pid = rec.sup.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert await wait_until_async(lambda: rec.sup.state == S.FAILED), rec.sup.state
    assert "exited unexpectedly with code -9" in (rec.sup.last_error or "")
    assert (rec.sup.restarts, rec.sup.crashes, rec.sup.pid) == (1, 1, None)
    assert rec.changes[-1] == ("crash", "failed")
    await rec.start()  # the first crash backs off for nothing: failed → starting → ready
    assert rec.sup.state == S.READY and rec.sup.last_error is None
    await rec.sup.stop()
    assert rec.changes == [("start", "starting"), ("ready", "ready"), ("crash", "failed"), ("start", "starting"),
                           ("ready", "ready"), ("stopping", "stopping"), ("stop", "stopped")]


async def test_stop_during_a_start_cancels_it_and_ends_stopped(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "slow")
    task = rec.start()
    pid = await rec.launched_pid()
    await rec.sup.stop("changed my mind")
    assert rec.sup.state == S.STOPPED and pids_alive([pid]) == []
    assert rec.sup.last_error == "start cancelled"
    assert rec.changes == [("start", "starting"), ("fail", "failed"), ("stop", "stopped")]
    assert task.cancelled()


async def test_stop_sends_sigkill_after_the_grace_period_when_sigterm_is_ignored(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "ignore-term", stop_timeout=0.5)
    await rec.start()
    pid = rec.sup.pid
    assert pid is not None
    t0 = time.monotonic()
    await rec.sup.stop()
    elapsed = time.monotonic() - t0
    assert rec.sup.state == S.STOPPED and pids_alive([pid]) == []
    assert 0.5 <= elapsed < 5, elapsed  # it waited the grace period for SIGTERM, then killed


async def test_health_falls_back_to_v1_models_unless_a_health_path_is_configured(tmp_path: Path, recorders) -> None:
    rec = recorders(tmp_path, "no-health")
    await rec.start()
    assert rec.sup.state == S.READY
    await rec.sup.stop()
    strict = recorders(tmp_path, "no-health", health_path="/health", start_timeout=0.5)
    with pytest.raises(StartFailed, match="did not become healthy within 0.5 s"):
        await strict.start()
