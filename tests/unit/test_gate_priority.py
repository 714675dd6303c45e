"""Gate priorities: batch lines (low) take a slot only when no interactive request waits, and hold at most
``share`` of the limit; an interactive waiter always goes first."""

from __future__ import annotations

import asyncio

import pytest

from llm_manager.runtime.queueing import Gate


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_batch_lines_hold_at_most_their_share_of_slots():
    gate = Gate(4, 10, 5, share=0.5)
    tasks = [asyncio.create_task(gate.acquire("m", low=True)) for _ in range(5)]
    await settle()
    assert (gate.in_flight, gate.low_in_flight, gate.low_queued) == (2, 2, 3)
    await gate.acquire("m")  # an interactive request still finds a free slot at once
    await gate.acquire("m")
    assert gate.in_flight == 4
    gate.release(low=True)  # a line's slot goes to the next line: lines stay within their share
    await settle()
    assert (gate.low_in_flight, gate.low_queued) == (2, 2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.low_in_flight == 2 and gate.low_queued == 0  # the two that held slots still hold them


async def test_an_interactive_waiter_goes_before_every_batch_line():
    gate = Gate(1, 10, 5, share=1.0)
    await gate.acquire("m", low=True)
    order: list[str] = []

    async def take(name: str, low: bool) -> None:
        await gate.acquire("m", low=low)
        order.append(name)

    lines = [asyncio.create_task(take(f"line{i}", True)) for i in range(3)]
    await settle()
    user = asyncio.create_task(take("user", False))  # arrives after the lines, leaves before them
    await settle()
    gate.release(low=True)
    await settle()
    assert order == ["user"]
    gate.release()
    await settle()
    assert order == ["user", "line0"]
    for _ in range(2):
        gate.release(low=True)
        await settle()
    assert order == ["user", "line0", "line1", "line2"]
    await asyncio.gather(user, *lines)


async def test_a_line_waits_while_an_interactive_request_waits_even_with_room_in_its_share():
    gate = Gate(2, 10, 5, share=0.5)
    await gate.acquire("m")
    await gate.acquire("m")
    user = asyncio.create_task(gate.acquire("m"))
    line = asyncio.create_task(gate.acquire("m", low=True))
    await settle()
    gate.release()
    await settle()
    assert user.done() and not line.done()
    gate.release()
    await settle()
    assert line.done() and (gate.in_flight, gate.low_in_flight) == (2, 1)


@pytest.mark.parametrize(("limit", "share", "slots"), [(1, 0.5, 1), (3, 0.5, 1), (4, 0.25, 1), (8, 0.75, 6)])
async def test_the_share_is_at_least_one_slot(limit: int, share: float, slots: int):
    gate = Gate(limit, 10, 5, share=share)
    assert gate.low_limit == slots


async def test_a_line_handed_a_slot_as_it_is_cancelled_passes_it_on():
    gate = Gate(1, 10, 5, share=1.0)
    await gate.acquire("m")
    first = asyncio.create_task(gate.acquire("m", low=True))
    second = asyncio.create_task(gate.acquire("m", low=True))
    await settle()
    gate.release()  # hands the slot to ``first``...
    first.cancel()  # ...which is cancelled before it runs
    await settle()
    assert second.done() and (gate.in_flight, gate.low_in_flight) == (1, 1)


async def test_unlimited_models_never_hold_lines_back():
    gate = Gate(None, 10, 5)
    for _ in range(50):
        await gate.acquire("m", low=True)
    assert gate.low_in_flight == 50 and gate.low_limit is None
