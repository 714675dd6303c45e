"""Per-model concurrency: at most ``limit`` requests in flight, the rest wait in a bounded FIFO queue."""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import QueueFull, RateLimited


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
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except asyncio.TimeoutError:
            if fut in self._waiters:
                self._waiters.remove(fut)
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us just as we gave up
            raise RateLimited(f"model {model}: waited {self.timeout:g} s in the queue", headers={"Retry-After": "1"}) from None
        except asyncio.CancelledError:
            if fut in self._waiters:
                self._waiters.remove(fut)
            elif fut.done() and not fut.cancelled():
                self.release()
            raise
        # the releaser already counted us in flight

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # hand the slot over: in_flight stays the same
                return
        self.in_flight -= 1
