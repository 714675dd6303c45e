"""Model name or alias -> the model that serves it."""

from __future__ import annotations

from collections.abc import Mapping

from ..config.parse import ModelConfig
from ..errors import ModelNotFound


class Router:
    def __init__(self, models: Mapping[str, ModelConfig]):
        self.models = models
        self._exact = {n: m.name for m in models.values() for n in m.names}
        self._folded = {n.casefold(): m.name for m in models.values() for n in m.names}

    def resolve(self, name: str) -> ModelConfig:
        """Exact name or alias first, then case-insensitive; unknown names list what exists."""
        key = self._exact.get(name) or self._folded.get(name.casefold())
        if key is None:
            known = ", ".join(sorted(self.models))
            raise ModelNotFound(f"model {name!r} not found; known models: {known}", param="model",
                                extra={"available_models": sorted(self.models)})
        return self.models[key]
