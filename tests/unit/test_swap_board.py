"""SwapBoard: which of several cold models waiting for the same room loads first (swap-aware scheduling)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from llm_manager.runtime.states import State
from llm_manager.runtime.swapping import SwapBoard


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
