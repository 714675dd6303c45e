"""The states of a model instance and the only transitions between them (checked in ``Supervisor._set_state``)."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"
    SLEEPING = "sleeping"  # the process runs, its device memory is freed (vLLM's sleep mode, ``unload: "sleep"``)


# The only transitions allowed; checked in one place (_set_state).
TRANSITIONS = {
    State.STOPPED: {State.STARTING},
    State.FAILED: {State.STARTING, State.STOPPED},
    State.STARTING: {State.READY, State.FAILED, State.STOPPING},
    State.READY: {State.STOPPING, State.FAILED, State.SLEEPING},
    State.STOPPING: {State.STOPPED},
    State.SLEEPING: {State.STARTING, State.STOPPING, State.FAILED},  # a wake goes through starting
}
