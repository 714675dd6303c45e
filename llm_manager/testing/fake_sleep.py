"""vLLM's sleep mode, faked: ``POST /sleep?level=1`` frees the model's memory and keeps the process,
``POST /wake_up`` takes it back (after ``--wake-time`` seconds), ``GET /is_sleeping`` tells which. While asleep the
model endpoints answer 503, as a server without its weights would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import tornado.web

from llm_manager.testing import sim_driver


class _Handler(tornado.web.RequestHandler):
    def initialize(self, state: Any) -> None:
        self.state = state

    def answer(self, payload: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))


class SleepHandler(_Handler):
    def post(self) -> None:
        level = self.get_argument("level", "1")
        if level not in ("1", "2"):
            self.set_status(400)
            return self.answer({"error": {"message": f"level must be 1 or 2, got {level}", "code": 400}})
        self.state.asleep = True
        if self.state.options.footprint_mb is not None:
            sim_driver.register(0)
        print(f"fake-backend: asleep (level {level}); device memory released", flush=True)
        self.answer({})


class WakeHandler(_Handler):
    async def post(self) -> None:
        if self.state.asleep:
            await asyncio.sleep(self.state.options.wake_time)
            self.state.asleep = False
            if self.state.options.footprint_mb is not None:
                sim_driver.register(self.state.options.footprint_mb)
            print("fake-backend: awake", flush=True)
        self.answer({})


class IsSleepingHandler(_Handler):
    def get(self) -> None:
        self.answer({"is_sleeping": self.state.asleep})


def routes(state: Any) -> list[Any]:
    s = {"state": state}
    return [(r"/sleep", SleepHandler, s), (r"/wake_up", WakeHandler, s), (r"/is_sleeping", IsSleepingHandler, s)]
