"""One model process as an explicit state machine: stopped → starting → ready → stopping → stopped, or failed.

The supervisor launches the profile's script or command in its own process group, captures its
output line by line, decides readiness with layered health checks (alive → port → HTTP health),
and always ends a stop with SIGKILL of the whole group so no grandchild survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable

import httpx

from ..config.parse import Config, ModelConfig, Profile
from ..errors import StartFailed, Unavailable
from .launch import SETPRIV, launch_argv, port_in_use, port_owner
from .model_logs import ModelLog
from .queueing import Gate
from .reaper import Reaper, kill_group, set_pdeathsig
from .sleepmode import SleepMode
from .states import TRANSITIONS, State

__all__ = ["TRANSITIONS", "State", "Supervisor"]


HEALTH_POLL_FIRST = 0.005  # seconds; loopback probes cost the server nothing, so poll fast while it loads
HEALTH_POLL_FAST_MAX = 0.02  # the interval cap for the first HEALTH_FAST_PHASE seconds of a start
HEALTH_FAST_PHASE = 10.0
HEALTH_POLL_MAX = 0.25  # then back off for models that take minutes to load

class Supervisor(SleepMode):
    """Owns one process of a model (instance ``instance``); as a routing target it is local and keyless.
    All methods run on the event loop. Sleep and wake (vLLM's sleep mode) are ``SleepMode``'s."""

    remote = False
    weight = 1.0
    headers: dict[str, str] = {}
    upstream_model = None  # the body's model is sent as it is

    def __init__(self, model: ModelConfig, config: Config, log: ModelLog, reaper: Reaper | None = None,
                 on_change: Callable[[Supervisor, str, str], None] | None = None, instance: int = 0,
                 gate: Gate | None = None):
        self.model = model
        self.instance = instance
        self.config = config
        self.log = log
        self.reaper = reaper
        self.on_change = on_change or (lambda _s, _kind, _detail: None)
        self.state = State.STOPPED
        self.profile: Profile | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at: float | None = None  # wall clock, when the launch began
        self.ready_at: float | None = None
        self.last_used: float = 0.0
        self.gate = gate or Gate(model.max_concurrency, model.max_queue, model.queue_timeout)  # the model's queue
        self.in_flight = 0  # requests this instance serves now
        self.waiting_start = 0  # requests waiting for this model to become ready
        self.start_phases: dict[str, float] = {}  # the last start: spawn, port, healthy, first_byte (seconds each)
        self._phase_mark = 0.0  # monotonic end of the last phase measured
        self.pending_restart = False  # config changed while it ran: restart when idle
        self.last_error: str | None = None
        self.crashes = 0  # consecutive crashes, reset after a healthy run
        self.restarts = 0
        self.retry_at = 0.0  # monotonic time before which a crashed model is not restarted
        self._start_task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None
        self._readers: list[asyncio.Task] = []
        self._stop_lock = asyncio.Lock()

    # ------------------------------------------------------------------ state

    def _set_state(self, new: State, kind: str = "", detail: str = "") -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"{self.model.name}: illegal transition {self.state.value} -> {new.value}")
        self.state = new
        self.log.add(f"state {new.value}" + (f": {detail}" if detail else ""), "manager")
        self.on_change(self, kind or new.value, detail)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    @property
    def id(self) -> str:
        """The model's name for instance 0 (so a one-instance model reads as before), ``name@i`` for the others."""
        return self.model.name if self.instance == 0 else f"{self.model.name}@{self.instance}"

    @property
    def port(self) -> int:
        return self.model.instance_port(self.instance)

    @property
    def limit(self) -> int | None:
        return self.model.max_concurrency

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}/{endpoint}"

    @property
    def queued(self) -> int:
        return self.gate.queued

    @property
    def busy(self) -> bool:
        """Serving, or its model has requests queued or waiting for a start: never evicted or idled out."""
        queued = self.gate.queued > 0 and not self.gate.draining  # a drained model is emptied for a swap
        return self.in_flight > 0 or queued or self.waiting_start > 0

    def info(self) -> dict:
        now = time.time()
        return {
            "name": self.model.name, "aliases": list(self.model.aliases), "mode": self.model.mode,
            "id": self.id, "instance": self.instance, "port": self.port, "state": self.state.value,
            "profile": self.profile.name if self.profile else None,
            "profiles": [p.name for p in self.model.profiles], "pid": self.pid,
            "in_flight": self.in_flight, "queued": self.queued, "last_used": self.last_used or None,
            "uptime_s": (now - self.ready_at) if self.ready_at and self.state == State.READY else None,
            "last_error": self.last_error, "auto_start": self.model.auto_start,
            "ttl_s": self.config.idle_ttl(self.model),
            "start_elapsed_s": (now - self.started_at) if self.state == State.STARTING and self.started_at else None,
            "start_timeout_s": self.model.start_timeout, "restarts": self.restarts,
            "max_concurrency": self.model.max_concurrency, "pending_restart": self.pending_restart,
        }

    # ------------------------------------------------------------------ start

    def take_config(self, config: Config, model: ModelConfig) -> None:
        """A reloaded config: new limits apply at once; a running process restarts once idle if its block changed."""
        changed = model != self.model
        self.config, self.model = config, model
        if changed and self.state in (State.STARTING, State.READY):
            self.pending_restart = True

    def check_backoff(self) -> None:
        """A model that keeps crashing is not relaunched before its back-off ends."""
        wait = self.retry_at - time.monotonic()
        if self.state == State.FAILED and wait > 0:
            raise Unavailable(
                f"model {self.id} failed {self.crashes} times in a row ({self.last_error}); "
                f"retrying in {wait:.0f} s", headers={"Retry-After": str(max(1, int(wait + 0.999)))})

    def begin_start(self, profile: Profile) -> asyncio.Task:
        """Enter ``starting`` now (so placement sees the reservation at once) and launch in a task."""
        if self.state not in (State.STOPPED, State.FAILED):
            raise RuntimeError(f"{self.model.name}: cannot start while {self.state.value}")
        self.check_backoff()
        self.profile = profile
        self.started_at = time.time()
        self.ready_at = None
        self.start_phases, self._phase_mark = {}, time.monotonic()
        self._set_state(State.STARTING, "start", f"profile {profile.name}")
        self._start_task = asyncio.ensure_future(self._launch_and_wait(profile))
        return self._start_task

    async def wait_ready(self) -> None:
        """Wait for a start in progress; every waiter shares the one launch and sees its error."""
        if self.state == State.STARTING and self._start_task is not None:
            await asyncio.shield(self._start_task)

    async def wait_stopped(self) -> None:
        async with self._stop_lock:
            pass

    async def _launch_and_wait(self, profile: Profile) -> None:
        try:
            await self._launch(profile)
            self._phase("spawn")
            await self._wait_healthy()
            self._phase("healthy")
        except StartFailed as exc:
            await self._fail_start(str(exc))
            raise
        except asyncio.CancelledError:
            await self._fail_start("start cancelled")
            raise
        except Exception as exc:  # an unexpected failure must not leave a process running
            await self._fail_start(f"{type(exc).__name__}: {exc}")
            raise StartFailed(f"model {self.id}: {exc}") from exc
        self._ready()

    def _ready(self) -> None:
        self.ready_at = time.time()
        self.last_used = time.time()
        self.last_error = None
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in self.start_phases.items())
        self._set_state(State.READY, "ready", f"in {self.ready_at - (self.started_at or self.ready_at):.2f} s "
                        f"({phases})")

    def _phase(self, name: str, at: float | None = None) -> None:
        """Close a cold-start phase: spawn (the process exists), port (it accepts connections), healthy (its health
        check passes), first_byte (the first answer after ready began)."""
        now = time.monotonic() if at is None else at
        self.start_phases[name] = max(0.0, now - self._phase_mark)
        self._phase_mark = now

    def answered(self, first_byte: float | None, cold: bool = False) -> None:
        """A request was answered (monotonic time of its first byte); ``cold``: it waited for this instance to
        start, so its first byte closes the start's last phase and the whole cold start is reported."""
        if cold and first_byte is not None and "healthy" in self.start_phases and "first_byte" not in self.start_phases:
            self._phase("first_byte", max(first_byte, self._phase_mark))
            self.on_change(self, "cold-start", ", ".join(f"{k} {v:.2f} s" for k, v in self.start_phases.items()))

    def failed(self, reason: str) -> None:
        """A request to this instance failed: its health is the process's (``_watch`` notices a death)."""

    async def _launch(self, profile: Profile) -> None:
        port = self.port
        if port_in_use(port):
            raise StartFailed(f"model {self.id}: port {port} is already in use by {port_owner(port)}, "
                              "which llm-manager did not start")
        argv = launch_argv(self.model, profile, self.config.base_dir, self.instance)
        env = {**os.environ, **profile.env, "PORT": str(port), "LLM_MANAGER_PORT": str(port),
               "INSTANCE": str(self.instance), "LLM_MANAGER_MODEL": self.model.name, "PYTHONUNBUFFERED": "1"}
        cwd = profile.cwd or str(self.config.base_dir)
        self.log.add(f"launch: {' '.join(argv)} (cwd {cwd})", "manager")
        spawn_argv, preexec = ([SETPRIV, "--pdeathsig", "KILL", "--", *argv], None) if SETPRIV else (argv, set_pdeathsig)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *spawn_argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
                preexec_fn=preexec, limit=1 << 20,
            )
        except OSError as exc:
            raise StartFailed(f"model {self.id}: cannot launch {argv[0]}: {exc.strerror or exc}") from None
        if self.reaper is not None:
            self.reaper.add(self.proc.pid)
        self._readers = [asyncio.ensure_future(self._read(self.proc.stdout, "stdout")),
                         asyncio.ensure_future(self._read(self.proc.stderr, "stderr"))]
        self._watch_task = asyncio.ensure_future(self._watch(self.proc))

    async def _read(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        with contextlib.suppress(asyncio.CancelledError, ValueError, OSError):
            while True:
                line = await stream.readline()
                if not line:
                    return
                self.log.add(line.decode("utf-8", errors="replace"), name)

    async def _drain_output(self, timeout: float = 1.0) -> None:
        """Let the readers take in what a process that just exited wrote last (its error message, usually):
        the exit can be seen before the pipes are read. Bounded: a grandchild may hold the pipes open."""
        pending = [t for t in self._readers if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def _last_lines(self, n: int = 8) -> str:
        lines = [x.line for x in self.log.tail(50) if x.stream != "manager"][-n:]
        return ("; last output: " + " | ".join(lines)) if lines else "; no output"

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        path = self.model.health_path or "/health"
        fallback = self.model.health_path is None
        started = time.monotonic()
        deadline = started + self.model.start_timeout
        delay = HEALTH_POLL_FIRST
        url = f"http://127.0.0.1:{self.port}"
        async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=0.5), trust_env=False) as client:
            while True:
                if self.proc.returncode is not None:
                    await self._drain_output()
                    raise StartFailed(f"model {self.id} exited with code {self.proc.returncode} "
                                      f"while starting{self._last_lines()}")
                if time.monotonic() > deadline:
                    raise StartFailed(f"model {self.id} did not become healthy within "
                                      f"{self.model.start_timeout:g} s{self._last_lines()}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(url + path)
                    if "port" not in self.start_phases:
                        self._phase("port")  # it answers HTTP: the port is open, the model may still load
                    if r.status_code == 200:
                        return
                    if r.status_code == 404 and fallback:
                        path, fallback = "/v1/models", False
                        continue
                await asyncio.sleep(delay)
                fast = time.monotonic() - started < HEALTH_FAST_PHASE
                delay = min(delay * 1.5, HEALTH_POLL_FAST_MAX if fast else HEALTH_POLL_MAX)

    async def _fail_start(self, message: str) -> None:
        self.last_error = message
        await self._kill_process()
        self._register_failure()
        self._set_state(State.FAILED, "fail", message)

    def _register_failure(self) -> None:
        self.crashes += 1
        backoff = 0.0 if self.crashes <= 1 else min(60.0, 2.0 ** (self.crashes - 1))
        self.retry_at = time.monotonic() + backoff

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Notice a ready model's process dying on its own: that is a crash."""
        code = await proc.wait()
        if proc is not self.proc or self.state not in (State.READY, State.SLEEPING):
            return
        await self._drain_output()
        if proc is not self.proc or self.state not in (State.READY, State.SLEEPING):
            return
        self.last_error = f"process exited unexpectedly with code {code}{self._last_lines(4)}"
        self.restarts += 1
        if self.ready_at and time.time() - self.ready_at > 60:
            self.crashes = 0  # a crash after a long healthy run starts a new series
        await self._kill_process()
        self._register_failure()
        self._set_state(State.FAILED, "crash", self.last_error)

    # ------------------------------------------------------------------ stop

    async def stop(self, reason: str = "stop requested") -> None:
        """SIGTERM the group, wait the grace period, then SIGKILL the group; always ends stopped."""
        async with self._stop_lock:
            if self.state in (State.STOPPED,):
                return
            if self.state == State.FAILED:
                self._set_state(State.STOPPED, "stop", reason)
                return
            if self.state == State.STARTING and self._start_task is not None:
                self._start_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._start_task
                if self.state == State.FAILED:
                    self._set_state(State.STOPPED, "stop", reason)
                    return
            self._set_state(State.STOPPING, "stopping", reason)
            await self._kill_process(self.model.stop_timeout)
            self.crashes = 0
            self._set_state(State.STOPPED, "stop", reason)

    async def _kill_process(self, grace: float = 0.0) -> None:
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.returncode is None and grace > 0:
            kill_group(pgid, signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        kill_group(pgid, signal.SIGKILL)  # always: grandchildren may hold the group alive
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 5.0)
        deadline = time.monotonic() + 2.0  # the group's last members take a moment to die
        while kill_group(pgid, 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.reaper is not None:
            self.reaper.remove(pgid)
        # A grandchild holding the pipe open must not hang us: give readers a moment, then cancel.
        if self._readers:
            _done, pending = await asyncio.wait(self._readers, timeout=0.5)
            for t in pending:
                t.cancel()
        self._readers = []
        if self._watch_task is not None and self._watch_task is not asyncio.current_task():
            self._watch_task.cancel()
        self._watch_task = None
        self.proc = None
