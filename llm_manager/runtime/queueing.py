"""Per-model concurrency: at most ``limit`` requests in flight, the rest wait in a bounded FIFO queue.

Batch lines (``low=True``) wait in a queue of their own: they get a free slot only when no interactive request
waits, and hold at most ``share`` of ``limit`` slots, so an interactive request waits behind at most one batch
line per slot it could have had.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from ..errors import QueueFull, RateLimited


class Gate:
    def __init__(self, limit: int | None, max_queue: int, timeout: float, share: float = 0.5):
        self.limit = limit
        self.max_queue = max_queue
        self.timeout = timeout
        self.share = share  # batch lines' share of ``limit`` (at least one slot)
        self.in_flight = 0
        self.low_in_flight = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._low: deque[asyncio.Future] = deque()
        self._since: dict[asyncio.Future, float] = {}  # monotonic time each interactive waiter joined
        self.draining = False  # admit nothing new (the model is being emptied for a swap); in flight finish

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting interactive request has been queued (0 when none waits)."""
        return time.monotonic() - self._since.get(self._waiters[0], time.monotonic()) if self._waiters else 0.0

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def low_queued(self) -> int:
        return len(self._low)

    @property
    def low_limit(self) -> int | None:
        return None if self.limit is None else max(1, int(self.limit * self.share))

    def _room(self) -> bool:
        return not self.draining and (self.limit is None or self.in_flight < self.limit)

    def _low_room(self) -> bool:
        low = self.low_limit
        return not self._waiters and self._room() and (low is None or self.low_in_flight < low)

    async def acquire(self, model: str, low: bool = False, retry_after: Callable[[], int] | None = None) -> None:
        """Take a slot; ``low``: a batch line, which queues behind every interactive request (and never times
        out here: its batch's completion window bounds it). ``retry_after``: the Retry-After of a refusal (asked
        only when refusing)."""
        if low:
            if not self._low and self._low_room():
                self.in_flight += 1
                self.low_in_flight += 1
                return
            await self._wait(self._low, model, low=True)
            return
        if self._room() and not self._waiters:
            self.in_flight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise QueueFull(f"model {model}: {self.in_flight} requests in flight and {len(self._waiters)} queued "
                            f"(max_concurrency {self.limit}, max_queue {self.max_queue}); retry later",
                            headers={"Retry-After": str(retry_after() if retry_after else 1)})
        await self._wait(self._waiters, model, low=False, retry_after=retry_after)

    async def _wait(self, queue: deque[asyncio.Future], model: str, low: bool,
                    retry_after: Callable[[], int] | None = None) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        queue.append(fut)
        timer = None
        if not low:
            self._since[fut] = time.monotonic()
            timer = loop.call_later(self.timeout, self._expire, fut, model, retry_after)
        try:
            await fut  # not wait_for: on 3.10/3.11 it swallows a cancellation that races the hand-over
        except asyncio.CancelledError:
            if fut in queue:
                queue.remove(fut)
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(low)  # the slot was handed to us just as we were cancelled: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
                self._since.pop(fut, None)
        # the waker already counted us in flight

    def _expire(self, fut: asyncio.Future, model: str, retry_after: Callable[[], int] | None = None) -> None:
        if not fut.done():
            self._waiters.remove(fut)
            fut.set_exception(RateLimited(f"model {model}: waited {self.timeout:g} s in the queue",
                                          headers={"Retry-After": str(retry_after() if retry_after else 1)}))
            self._wake()  # a batch line may have waited only behind this request

    def drain(self, on: bool) -> None:
        """Stop admitting (requests queue; those in flight finish), or admit again."""
        self.draining = on
        self._wake()

    def set_limits(self, limit: int | None, max_queue: int, timeout: float, share: float | None = None) -> None:
        """New limits (a config reload): a raised ``limit`` admits waiters at once, not on the next release."""
        self.limit, self.max_queue, self.timeout = limit, max_queue, timeout
        if share is not None:
            self.share = share
        self._wake()

    def release(self, low: bool = False) -> None:
        self.in_flight -= 1
        if low:
            self.low_in_flight -= 1
        self._wake()  # over a lowered limit: the slot is not handed on

    def _wake(self) -> None:
        """Hand free slots on: interactive waiters first, then batch lines within their share."""
        while self._room():
            if self._waiters:
                fut = self._waiters.popleft()
                if not fut.done():
                    self.in_flight += 1
                    fut.set_result(None)
            elif self._low and self._low_room():
                fut = self._low.popleft()
                if not fut.done():
                    self.in_flight += 1
                    self.low_in_flight += 1
                    fut.set_result(None)
            else:
                return
