"""Per-model concurrency: at most ``limit`` requests in flight, the rest wait in a bounded FIFO queue."""

from __future__ import annotations

import asyncio
from collections import deque

from ..errors import QueueFull, RateLimited


class Gate:
    def __init__(self, limit: int | None, max_queue: int, timeout: float):
        self.limit = limit
        self.max_queue = max_queue
        self.timeout = timeout
        self.in_flight = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self, model: str) -> None:
        if self.limit is None or (self.in_flight < self.limit and not self._waiters):
            self.in_flight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise QueueFull(f"model {model}: {self.in_flight} requests in flight and {len(self._waiters)} queued "
                            f"(max_concurrency {self.limit}, max_queue {self.max_queue}); retry later",
                            headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(self.timeout, self._expire, fut, model)
        try:
            await fut  # not wait_for: on 3.10/3.11 it swallows a cancellation that races the hand-over
        except asyncio.CancelledError:
            if fut in self._waiters:
                self._waiters.remove(fut)
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # the slot was handed to us just as we were cancelled: pass it on
            raise
        finally:
            timer.cancel()
        # the releaser already counted us in flight

    def _expire(self, fut: asyncio.Future, model: str) -> None:
        if not fut.done():
            self._waiters.remove(fut)
            fut.set_exception(RateLimited(f"model {model}: waited {self.timeout:g} s in the queue",
                                          headers={"Retry-After": "1"}))

    def set_limits(self, limit: int | None, max_queue: int, timeout: float) -> None:
        """New limits (a config reload): a raised ``limit`` admits waiters at once, not on the next release."""
        self.limit, self.max_queue, self.timeout = limit, max_queue, timeout
        while self._waiters and (self.limit is None or self.in_flight < self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def release(self) -> None:
        if self.limit is None or self.in_flight <= self.limit:  # over a lowered limit: the slot is not handed on
            while self._waiters:
                fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(None)  # hand the slot over: in_flight stays the same
                    return
        self.in_flight -= 1
