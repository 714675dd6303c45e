"""Reads shared by every open session: five browser tabs on one manager cost one read, not five.

A read is keyed by what it reads (a manager, a range); a session that asks for the same key within ``ttl`` seconds
gets the same answer (or waits on the same read in flight). Keys are per event loop, so answers never cross loops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

_READS: dict[tuple, tuple[float, asyncio.Future]] = {}
_KEEP_S = 120.0  # entries older than this are dropped (a range nobody looks at any more)


def source_key(source: Any) -> Any:
    """One key per manager or database, however many sessions (each has its own source object) look at it."""
    manager = getattr(source, "manager", None)
    if manager is not None:
        return ("manager", id(manager))
    client = getattr(source, "client", None)
    if client is not None:
        return ("client", getattr(client, "url", id(client)))
    return ("source", getattr(source, "url", id(source)))


async def shared(key: tuple, ttl: float, read: Callable[[], Awaitable[Any]]) -> Any:
    """``await read()``, or the answer another session got for ``key`` less than ``ttl`` seconds ago."""
    now = time.monotonic()
    full = (id(asyncio.get_running_loop()), *key)
    for k in [k for k, (t, _) in _READS.items() if now - t > _KEEP_S]:
        del _READS[k]
    taken = _READS.get(full)
    stale = taken is None or now - taken[0] > ttl or (taken[1].done() and taken[1].exception() is not None)
    if stale:
        taken = (now, asyncio.ensure_future(read()))
        _READS[full] = taken
    return await asyncio.shield(taken[1])
