"""Gate: per-model concurrency with a bounded FIFO queue, its limit changes and its cancellation races."""

from __future__ import annotations

import asyncio

import pytest

from llm_manager.errors import QueueFull, RateLimited
from llm_manager.runtime.queueing import Gate


async def settle() -> None:
    """Let every ready callback run (no timing involved: the loop just drains what is ready)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fifo_hand_over_keeps_in_flight():
    gate = Gate(1, 10, 5)
    await gate.acquire("m")
    order: list[int] = []

    async def waiter(i: int) -> None:
        await gate.acquire("m")
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await settle()
    assert gate.queued == 3 and gate.in_flight == 1
    for _ in range(3):
        gate.release()
        await settle()
        assert gate.in_flight == 1
    assert order == [0, 1, 2]
    gate.release()
    assert gate.in_flight == 0
    await asyncio.gather(*tasks)


async def test_raising_the_limit_admits_waiters_at_once():
    gate = Gate(1, 10, 5)
    await gate.acquire("m")
    tasks = [asyncio.create_task(gate.acquire("m")) for _ in range(3)]
    await settle()
    assert gate.queued == 3
    gate.set_limits(3, 10, 5)  # a reload raised max_concurrency: two of the three go now, no release needed
    await settle()
    assert gate.in_flight == 3 and gate.queued == 1
    assert sum(t.done() for t in tasks) == 2
    gate.set_limits(None, 10, 5)  # unlimited: everyone goes
    await settle()
    assert gate.in_flight == 4 and gate.queued == 0 and all(t.done() for t in tasks)


async def test_lowering_the_limit_drains_before_handing_over():
    gate = Gate(3, 10, 5)
    for _ in range(3):
        await gate.acquire("m")
    waiter = asyncio.create_task(gate.acquire("m"))
    await settle()
    gate.set_limits(1, 10, 5)
    gate.release()
    gate.release()
    await settle()
    assert gate.in_flight == 1 and not waiter.done()  # still at the new limit: nobody admitted
    gate.release()
    await settle()
    assert waiter.done() and gate.in_flight == 1


async def test_queue_full_and_timeout():
    gate = Gate(1, 1, 0.05)
    await gate.acquire("m")
    queued = asyncio.create_task(gate.acquire("m"))
    await settle()
    with pytest.raises(QueueFull):
        await gate.acquire("m")
    with pytest.raises(RateLimited):
        await queued  # waits out its queue_timeout
    assert gate.queued == 0 and gate.in_flight == 1


async def test_cancelled_waiter_gives_back_a_slot_handed_to_it():
    """The slot is handed over and the waiter is cancelled before it runs: the slot must not leak."""
    gate = Gate(1, 10, 5)
    await gate.acquire("m")
    waiter = asyncio.create_task(gate.acquire("m"))
    await settle()
    gate.release()  # hands the slot to the waiter (in_flight stays 1)
    waiter.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.in_flight == 0 and gate.queued == 0


async def test_cancelled_waiter_leaves_the_queue():
    gate = Gate(1, 10, 5)
    await gate.acquire("m")
    waiter = asyncio.create_task(gate.acquire("m"))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.queued == 0
    gate.release()
    assert gate.in_flight == 0
