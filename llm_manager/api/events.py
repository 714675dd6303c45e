"""/api/ws: one WebSocket carrying model state changes, device samples, throughput and usage ticks,
model events, and log lines for the models a client subscribed to."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

import tornado.websocket

from ..errors import LLMManagerError
from ..service import Service
from .base import caller_of

TOPICS = ("model", "devices", "throughput", "usage", "event", "log")
SUBPROTOCOL = "llm-manager"
BEARER_PREFIX = "bearer."


def subprotocol_token(offered: str) -> str | None:
    """The admin key a browser sent as a subprotocol, ``bearer.<base64url(key), unpadded>``.

    Browsers cannot set headers on a WebSocket, and a key in the URL ends up in logs and history; the
    subprotocol list is the one header a page controls (Kubernetes carries its bearer token the same way).
    """
    for item in offered.split(","):
        item = item.strip()
        if item.startswith(BEARER_PREFIX):
            encoded = item[len(BEARER_PREFIX):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


class EventSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, service: Service) -> None:
        self.service, self.manager = service, service.manager
        self._unsubscribe: list[Callable[[], None]] = []
        self.log_models: set[str] = set()

    def check_origin(self, origin: str) -> bool:
        return True  # the request guard (guard.py) has refused foreign origins before this handler runs

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        token = (subprotocol_token(self.request.headers.get("Sec-WebSocket-Protocol", ""))
                 or self.get_argument("token", None))  # ?token= still works for scripts; logs redact it
        try:
            self.service.accounting.security.authorize_admin(caller_of(self.request, token))
        except LLMManagerError as exc:
            self.set_status(exc.status)
            self.finish(json.dumps(exc.body()))
            return
        await super().get(*args, **kwargs)

    def open(self) -> None:
        m = self.manager
        self._send({"type": "snapshot", "models": m.models_info(), "devices": m.devices_info()["devices"],
                    "events": m.events[-50:], "ts": time.time()})
        for topic in TOPICS:
            self._unsubscribe.append(m.bus.subscribe(topic, self._on_event))

    def _on_event(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == "log":
            if payload.get("model") in self.log_models:
                self._send({"type": "log", **payload})
        elif topic == "model":
            self._send({"type": "model", "model": payload})
        elif topic == "devices":
            self._send({"type": "devices", "devices": payload["devices"], "ts": payload["ts"]})
        elif topic == "usage":
            self._send({"type": "usage", "record": payload})
        elif topic == "event":
            self._send({"type": "event", "event": payload})
        else:
            self._send({"type": topic, **payload})

    def _send(self, msg: dict[str, Any]) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            self.write_message(json.dumps(msg, default=str))
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if isinstance(msg.get("subscribe_logs"), str):
            name = msg["subscribe_logs"]
            try:
                name = self.manager.resolve(name).name
            except LLMManagerError:
                return
            self.log_models.add(name)
            for line in self.manager.logs(name, 200):
                self._send({"type": "log", "model": name, **line})
        if isinstance(msg.get("unsubscribe_logs"), str):
            self.log_models.discard(msg["unsubscribe_logs"])

    def on_close(self) -> None:
        for unsub in self._unsubscribe:
            unsub()
        self._unsubscribe = []
