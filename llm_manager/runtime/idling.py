"""How long an idle model stays loaded: the config's ttl, or what a request asked for this load (``keep_alive``).

Mixed into the Manager (its ``router``, ``config`` and ``_keep_alive``); the Autoscaler asks ``idle_limit``.
"""

from __future__ import annotations

from ..config.parse import Config
from .router import Router


class IdleLimits:
    router: Router
    config: Config
    _keep_alive: dict[str, float]  # model -> seconds a request asked it to stay loaded (this load)

    def keep_alive(self, name: str, seconds: float | None) -> None:
        """How long a model stays loaded after its last request, for its current load (Ollama's ``keep_alive``):
        0 stops it once idle, a negative number keeps it until stopped, None returns to the config's ttl."""
        model = self.router.resolve(name).name
        if seconds is None:
            self._keep_alive.pop(model, None)
        else:
            self._keep_alive[model] = seconds

    def has_keep_alive(self, name: str) -> bool:
        return self.router.resolve(name).name in self._keep_alive

    def idle_limit(self, name: str) -> float | None:
        """Seconds after its last request that a ready model is stopped; None: it is never stopped for idling."""
        model = self.router.resolve(name)
        if model.name in self._keep_alive:
            seconds = self._keep_alive[model.name]
            return None if seconds < 0 else seconds
        ttl = self.config.idle_ttl(model)
        return ttl if ttl > 0 else None
