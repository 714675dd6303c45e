"""The supervisor's state machine without a model process: the transition table, what a transition does, starts
that fail before anything is launched, the crash back-off, stop from every resting state, and config hand-over.

Launching, health checks, crashes and stopping a real process are in tests/integration/test_supervisor_process.py.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port

from llm_manager.config.parse import Config, ModelConfig, Profile, ProgramConfig
from llm_manager.errors import StartFailed, Unavailable
from llm_manager.runtime.model_logs import ModelLog
from llm_manager.runtime.supervisor import TRANSITIONS, State, Supervisor

S = State


class Recorder:
    """A supervisor whose every reported change is kept as (kind, state at the time, detail)."""

    def __init__(self, tmp_path: Path, profile: Profile | None = None, port: int | None = None, **model: object):
        profile = profile or Profile("p", (), {}, command=("/bin/true",))
        self.model = ModelConfig(name="m", mode="Chat", port=port or free_port(), profiles=(profile,),
                                 **model)  # type: ignore[arg-type]
        self.config = Config(program=ProgramConfig(), models={"m": self.model}, base_dir=tmp_path)
        self.changes: list[tuple[str, str, str]] = []
        self.sup = Supervisor(self.model, self.config, ModelLog("m", None), None,
                              lambda s, kind, detail: self.changes.append((kind, s.state.value, detail)))

    def kinds(self) -> list[tuple[str, str]]:
        return [(kind, state) for kind, state, _ in self.changes]

    def manager_lines(self) -> list[str]:
        return [x.line for x in self.sup.log.tail(100) if x.stream == "manager"]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port a stranger listens on: a start must fail on it before launching anything."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# ---------------------------------------------------------------- the table and _set_state


def test_the_transition_table_is_the_documented_machine() -> None:
    """stopped → starting → ready → stopping → stopped; a start or a run can fail; failed restarts or stops; a ready
    process may sleep (its memory freed) and wakes through starting."""
    assert TRANSITIONS == {
        S.STOPPED: {S.STARTING},
        S.STARTING: {S.READY, S.FAILED, S.STOPPING},
        S.READY: {S.STOPPING, S.FAILED, S.SLEEPING},
        S.STOPPING: {S.STOPPED},
        S.FAILED: {S.STARTING, S.STOPPED},
        S.SLEEPING: {S.STARTING, S.STOPPING, S.FAILED},
    }
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("old", "new"), [(a, b) for a in State for b in State if b not in TRANSITIONS[a]])
def test_an_illegal_transition_raises_and_changes_nothing(tmp_path: Path, old: State, new: State) -> None:
    rec = Recorder(tmp_path)
    rec.sup.state = old
    with pytest.raises(RuntimeError, match=f"illegal transition {old.value} -> {new.value}"):
        rec.sup._set_state(new)
    assert rec.sup.state == old and rec.changes == [] and rec.manager_lines() == []


@pytest.mark.parametrize(("old", "new"), [(a, b) for a in State for b in sorted(TRANSITIONS[a])])
def test_a_legal_transition_is_logged_and_reported(tmp_path: Path, old: State, new: State) -> None:
    rec = Recorder(tmp_path)
    rec.sup.state = old
    rec.sup._set_state(new, detail="why")
    assert rec.sup.state == new and rec.sup.info()["state"] == new.value
    assert rec.changes == [(new.value, new.value, "why")]  # the kind defaults to the state's name
    assert rec.manager_lines() == [f"state {new.value}: why"]


# ---------------------------------------------------------------- starts that fail before a launch


async def test_a_start_enters_starting_at_once_then_fails_on_a_held_port(tmp_path: Path, held_port: int) -> None:
    rec = Recorder(tmp_path, port=held_port)
    task = rec.sup.begin_start(rec.model.profiles[0])
    assert rec.sup.state == S.STARTING and rec.sup.info()["profile"] == "p"  # placement sees it before the launch
    with pytest.raises(StartFailed, match=f"port {held_port} is already in use"):
        await task
    assert rec.sup.state == S.FAILED and rec.sup.pid is None and rec.sup.proc is None
    assert rec.kinds() == [("start", "starting"), ("fail", "failed")]
    assert "already in use" in (rec.sup.last_error or "") and rec.sup.crashes == 1
    assert not any(line.startswith("launch:") for line in rec.manager_lines())  # nothing was launched


async def test_a_windows_batch_file_fails_the_start_without_a_launch(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, Profile("win", (), {}, bat_path="scripts\\start.bat"))
    with pytest.raises(StartFailed, match="Windows batch file"):
        await rec.sup.begin_start(rec.model.profiles[0])
    assert rec.sup.state == S.FAILED and rec.kinds() == [("start", "starting"), ("fail", "failed")]
    assert not any(line.startswith("launch:") for line in rec.manager_lines())


@pytest.mark.parametrize("state", [S.STARTING, S.READY, S.STOPPING])
def test_begin_start_refuses_unless_stopped_or_failed(tmp_path: Path, state: State) -> None:
    rec = Recorder(tmp_path)
    rec.sup.state = state
    with pytest.raises(RuntimeError, match=f"cannot start while {state.value}"):
        rec.sup.begin_start(rec.model.profiles[0])
    assert rec.sup.state == state and rec.changes == []


# ---------------------------------------------------------------- back-off


def test_the_back_off_doubles_from_the_second_failure_and_stops_at_a_minute(tmp_path: Path) -> None:
    sup = Recorder(tmp_path).sup
    waits = []
    for _ in range(9):
        before = time.monotonic()
        sup._register_failure()
        waits.append(sup.retry_at - before)
    assert [round(w) for w in waits] == [0, 2, 4, 8, 16, 32, 60, 60, 60]
    assert sup.crashes == 9


async def test_failures_in_a_row_back_off_and_refuse_a_start_with_retry_after(tmp_path: Path, held_port: int) -> None:
    rec = Recorder(tmp_path, port=held_port)
    profile = rec.model.profiles[0]
    with pytest.raises(StartFailed):
        await rec.sup.begin_start(profile)
    rec.sup.check_backoff()  # the first failure: a retry may come at once
    with pytest.raises(StartFailed):
        await rec.sup.begin_start(profile)
    assert rec.sup.state == S.FAILED and rec.sup.crashes == 2
    changes = len(rec.changes)
    with pytest.raises(Unavailable, match=r"failed 2 times in a row \(model m: port .* in use.*\); retrying in 2 s") as exc:
        rec.sup.begin_start(profile)
    assert exc.value.headers == {"Retry-After": "2"} and not isinstance(exc.value, StartFailed)
    assert rec.sup.state == S.FAILED and len(rec.changes) == changes  # refused: no transition, no launch

    rec.sup.retry_at = time.monotonic()  # the back-off has run out
    with pytest.raises(StartFailed):
        await rec.sup.begin_start(profile)
    assert rec.sup.crashes == 3 and 3 < rec.sup.retry_at - time.monotonic() <= 4


def test_no_back_off_outside_failed(tmp_path: Path) -> None:
    sup = Recorder(tmp_path).sup
    sup.crashes, sup.retry_at = 5, time.monotonic() + 30
    for state in (S.STOPPED, S.STARTING, S.READY, S.STOPPING):
        sup.state = state
        sup.check_backoff()
    sup.state = S.FAILED
    with pytest.raises(Unavailable, match="retrying in 30 s"):
        sup.check_backoff()


# ---------------------------------------------------------------- stop without a process


async def test_stop_of_a_stopped_model_does_nothing(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    await rec.sup.stop()
    await rec.sup.wait_stopped()
    assert rec.sup.state == S.STOPPED and rec.changes == []


async def test_stop_of_a_failed_model_goes_straight_to_stopped(tmp_path: Path, held_port: int) -> None:
    rec = Recorder(tmp_path, port=held_port)
    with pytest.raises(StartFailed):
        await rec.sup.begin_start(rec.model.profiles[0])
    await rec.sup.stop("operator")
    assert rec.sup.state == S.STOPPED
    assert rec.changes[-1] == ("stop", "stopped", "operator")
    assert rec.kinds() == [("start", "starting"), ("fail", "failed"), ("stop", "stopped")]  # no stopping: no process


# ---------------------------------------------------------------- a reloaded config


@pytest.mark.parametrize(("state", "restart"), [(S.STOPPED, False), (S.FAILED, False), (S.STARTING, True),
                                                (S.READY, True)])
def test_take_config_takes_the_new_block_now_and_restarts_a_running_model_later(tmp_path: Path, state: State,
                                                                                restart: bool) -> None:
    """(The model's queue limits are its ModelGroup's: tests/unit/test_model_group.py.)"""
    rec = Recorder(tmp_path, max_concurrency=1, max_queue=5)
    rec.sup.state = state
    rec.sup.take_config(rec.config, rec.model)  # the same block: nothing to restart
    assert rec.sup.pending_restart is False
    changed = dataclasses.replace(rec.model, max_concurrency=3, max_queue=7, queue_timeout=9.0, stop_timeout=1.0)
    rec.sup.take_config(rec.config, changed)
    assert rec.sup.model is changed and rec.sup.info()["max_concurrency"] == 3
    assert rec.sup.pending_restart is restart and rec.sup.state == state and rec.changes == []
