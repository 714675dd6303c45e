"""Attach the optional layers (usage store, pricing, keys/budgets/rate limits) to a Manager.

Kept apart from Manager so the core runs without them and each layer is one import away.
"""

from __future__ import annotations

from .manager import Manager


def attach_optional_layers(manager: Manager) -> None:
    """Nothing yet beyond the core; usage accounting and security hook in here."""
    return None
