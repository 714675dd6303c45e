"""In-process publish/subscribe: state changes, device samples, usage ticks and log lines.

Publishers run on the IOLoop; subscribers are plain callables that must return quickly (the
WebSocket handler writes a message, the dashboard updates a buffer). A failing subscriber is
logged and dropped from that delivery, never allowed to break the publisher.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Subscriber = Callable[[str, dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, list[Subscriber]] = defaultdict(list)

    def subscribe(self, topic: str, fn: Subscriber) -> Callable[[], None]:
        """Subscribe to a topic ("*" for all); returns the unsubscribe function."""
        self._subs[topic].append(fn)

        def unsubscribe() -> None:
            if fn in self._subs[topic]:
                self._subs[topic].remove(fn)

        return unsubscribe

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        for fn in (*self._subs.get(topic, ()), *self._subs.get("*", ())):
            try:
                fn(topic, payload)
            except Exception:  # a broken subscriber must not break the publisher
                log.exception("event subscriber failed on %s", topic)

    def has_subscribers(self, topic: str) -> bool:
        return bool(self._subs.get(topic) or self._subs.get("*"))
