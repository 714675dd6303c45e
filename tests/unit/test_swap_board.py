"""SwapBoard: which of several cold models waiting for the same room loads first (swap-aware scheduling)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from llm_manager.runtime.states import State
from llm_manager.runtime.swapping import SwapBoard, SwapWait


@dataclass(eq=False)
class FakeSup:
    """What the board reads of a Supervisor."""

    name: str
    devices: tuple[str, ...] = ("gpu",)
    waiting_start: int = 1
    queued: int = 0
    state: State = State.STOPPED
    model: Any = field(init=False)
    gate: Any = field(init=False)

    def __post_init__(self) -> None:
        self.model = SimpleNamespace(name=self.name, profiles=[SimpleNamespace(required_devices=self.devices)])
        self.gate = SimpleNamespace(queued=self.queued)

    @property
    def id(self) -> str:
        return self.name


def waiting(board: SwapBoard, sup: FakeSup, waited: float) -> None:
    board.join(SimpleNamespace(sup=sup, since=time.monotonic() - waited))  # type: ignore[arg-type]


def test_the_model_with_more_waiting_requests_loads_first() -> None:
    board = SwapBoard()
    few, many = FakeSup("few", waiting_start=1), FakeSup("many", waiting_start=2, queued=3)
    waiting(board, few, 2.0)  # older, but one request
    waiting(board, many, 1.0)
    assert board.ahead(few, max_wait=60) is many
    assert board.ahead(many, max_wait=60) is None
    board.held_back["few"] = 10  # requests held back while "few" is drained count as its demand too
    assert board.ahead(many, max_wait=60) is few


def test_aging_puts_the_oldest_first_whatever_the_demand() -> None:
    board = SwapBoard()
    old, busy = FakeSup("old", waiting_start=1), FakeSup("busy", waiting_start=9)
    waiting(board, old, 31.0)  # past max_wait / 2
    waiting(board, busy, 1.0)
    assert board.ahead(busy, max_wait=60) is old
    assert board.ahead(old, max_wait=60) is None


def test_no_competition_with_the_same_model_other_devices_or_a_start_under_way() -> None:
    board = SwapBoard()
    me = FakeSup("me", waiting_start=1)
    other_gpu = FakeSup("elsewhere", devices=("gpu1",), waiting_start=5)
    starting = FakeSup("starting", waiting_start=5, state=State.STARTING)
    for sup in (other_gpu, starting):
        waiting(board, sup, 1.0)
    assert board.ahead(me, max_wait=60) is None
    tie_a, tie_b = FakeSup("a"), FakeSup("b")
    now = time.monotonic()
    board.join(SimpleNamespace(sup=tie_a, since=now))  # type: ignore[arg-type]
    board.join(SimpleNamespace(sup=tie_b, since=now))  # type: ignore[arg-type]
    assert {board.ahead(tie_a, 60), board.ahead(tie_b, 60)} == {None, tie_a}  # a tie is broken by id, never both


def test_leaving_forgets_a_start() -> None:
    board = SwapBoard()
    sup = FakeSup("x")
    wait = SimpleNamespace(sup=sup, since=time.monotonic())
    board.join(wait)  # type: ignore[arg-type]
    board.told[sup] = "something"  # type: ignore[index]
    board.leave(wait)  # type: ignore[arg-type]
    assert board.waiting == {} and board.told == {}


def starter(board: SwapBoard, scheduler: str = "swap-aware", reload_s: float = 4.0) -> Any:
    """What a SwapWait reads of the Manager: the board, the program's settings and the learned load times."""
    program = SimpleNamespace(scheduler=scheduler, max_wait=60.0, min_residency=10.0)
    return SimpleNamespace(swaps=board, config=SimpleNamespace(program=program),
                           groups={"v": SimpleNamespace(load_s=reload_s)})


def loaded(ago: float, idle: float) -> Any:
    """A ready, idle victim loaded ``ago`` seconds ago whose last request ended ``idle`` seconds ago."""
    now = time.time()
    return SimpleNamespace(id="v", state=State.READY, busy=False, ready_at=now - ago, last_used=now - idle,
                           model=SimpleNamespace(name="v", min_residency=None))


def cold_wait(board: SwapBoard, scheduler: str = "swap-aware", requests: int = 1, waited: float = 1.0) -> SwapWait:
    """The first of ``requests`` requests that have waited ``waited`` seconds for a cold model's start."""
    cold = FakeSup("cold", waiting_start=requests)
    waits = [SwapWait(starter(board, scheduler), cold) for _ in range(requests)]  # type: ignore[arg-type]
    for wait in waits:
        wait.since = time.monotonic() - waited
        board.join(wait)
    return waits[0]


def test_a_fresh_idle_model_is_kept_however_many_requests_wait() -> None:
    wait = cold_wait(SwapBoard(), requests=8, waited=9.0)
    fresh = loaded(ago=5.0, idle=5.0)
    assert wait.kept([fresh]) == [fresh]
    assert "min_residency" in wait.why_blocked(fresh)


def test_past_residency_a_model_that_just_went_idle_is_kept_until_a_reload_was_lost_waiting() -> None:
    board = SwapBoard()
    wait = cold_wait(board, requests=1, waited=3.0)
    just_idle = loaded(ago=30.0, idle=0.5)
    assert wait.kept([just_idle]) == [just_idle]  # one request has waited 0.5 s of its idle time: less than 4 s
    assert "reload (4.0 s)" in wait.why_blocked(just_idle)
    long_idle = loaded(ago=30.0, idle=4.5)  # idle longer than its reload: nobody is coming back for it soon
    assert wait.kept([long_idle]) == []


def test_many_waiting_requests_make_an_idle_model_go_sooner() -> None:
    board = SwapBoard()
    wait = cold_wait(board, requests=8, waited=2.0)
    victim = loaded(ago=30.0, idle=0.6)  # 8 requests x 0.6 s of its idle time = 4.8 s >= its 4 s reload
    assert board.waited(wait.sup, 0.6) == pytest.approx(4.8, abs=0.05)
    assert wait.kept([victim]) == []
    assert cold_wait(SwapBoard(), requests=2, waited=2.0).kept([victim]) == [victim]  # 1.2 s: not yet


def test_fifo_and_aging_keep_nothing() -> None:
    fresh = loaded(ago=1.0, idle=0.0)
    assert cold_wait(SwapBoard(), scheduler="fifo").kept([fresh]) == []
    assert cold_wait(SwapBoard(), waited=31.0).kept([fresh]) == []  # past max_wait / 2
