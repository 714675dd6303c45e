"""vLLM's sleep mode for an instance (``unload: "sleep"``): free its device memory and keep the process, wake it
on the next request. Faster than a stop and a cold start where the server allows it; a server that refuses to sleep
is stopped instead. Mixed into ``Supervisor``, whose state machine, lock and start phases it drives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import httpx

from ..config.parse import ModelConfig
from ..errors import StartFailed
from .model_logs import ModelLog
from .states import State


class SleepMode:
    """Relies on the Supervisor's state machine (``state``, ``_set_state``, ``_stop_lock``), its start bookkeeping
    (``started_at``, ``ready_at``, ``start_phases``, ``_phase``, ``_ready``, ``_fail_start``) and ``stop``."""

    model: ModelConfig
    log: ModelLog
    state: State
    started_at: float | None
    ready_at: float | None
    start_phases: dict[str, float]
    _phase_mark: float
    _start_task: asyncio.Task | None
    _stop_lock: asyncio.Lock
    last_error: str | None

    if TYPE_CHECKING:  # the Supervisor's, declared for type checkers only (no stub may shadow them)
        @property
        def id(self) -> str: ...

        @property
        def port(self) -> int: ...

        def _set_state(self, new: State, kind: str = "", detail: str = "") -> None: ...

        def _phase(self, name: str, at: float | None = None) -> None: ...

        def _ready(self) -> None: ...

        async def _fail_start(self, message: str) -> None: ...

        async def stop(self, reason: str = "stop requested") -> None: ...

    async def sleep(self, reason: str) -> None:
        """Free the device memory and keep the process (``POST /sleep?level=1``, vLLM's sleep mode); a server
        that refuses is stopped instead."""
        async with self._stop_lock:
            if self.state != State.READY:
                return
            answered = None
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0), trust_env=False) as client:
                    answered = (await client.post(f"http://127.0.0.1:{self.port}/sleep", params={"level": "1"}))
            if answered is not None and answered.status_code < 300 and self.state == State.READY:
                self._set_state(State.SLEEPING, "sleep", reason)
                return
        if self.state == State.READY:
            why = f"answered {answered.status_code}" if answered is not None else "did not answer"
            self.log.add(f"POST /sleep {why}: stopping instead", "manager")
            await self.stop(reason)

    def begin_wake(self) -> asyncio.Task:
        """Enter ``starting`` now (placement sees the reservation at once) and wake the process in a task."""
        if self.state != State.SLEEPING:
            raise RuntimeError(f"{self.id}: cannot wake while {self.state.value}")
        self.started_at, self.ready_at = time.time(), None
        self.start_phases, self._phase_mark = {}, time.monotonic()
        self._set_state(State.STARTING, "wake", "waking from sleep")
        self._start_task = asyncio.ensure_future(self._wake())
        return self._start_task

    async def _wake(self) -> None:
        timeout = httpx.Timeout(self.model.start_timeout, connect=2.0)
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                answer = await client.post(f"http://127.0.0.1:{self.port}/wake_up")
            if answer.status_code >= 300:
                raise StartFailed(f"model {self.id}: POST /wake_up answered {answer.status_code}")
            self._phase("wake")
        except httpx.HTTPError as exc:
            await self._fail_start(f"model {self.id}: waking failed: {type(exc).__name__}")
            raise StartFailed(self.last_error or "waking failed") from None
        except StartFailed as exc:
            await self._fail_start(str(exc))
            raise
        except asyncio.CancelledError:
            await self._fail_start("wake cancelled")
            raise
        self._ready()
