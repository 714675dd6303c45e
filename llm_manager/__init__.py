"""llm-manager: a local LLM model manager and OpenAI-compatible gateway.

The public API is ``__all__``: ``from llm_manager import Manager, read_config, Client`` and the like. Each name
is loaded on first use (PEP 562), so ``import llm_manager`` stays light: the Manager pulls in pandas and
SQLAlchemy, the notebook helpers ipywidgets, and none of that is imported until a name that needs it is asked for.
``_EXPORTS`` is the one place that says where each name lives; moving a module is a one-line edit there.
"""

from __future__ import annotations

import importlib
from typing import Any

# Defined here directly, not lazily: the manager and the management API import it (``from . import __version__``).
__version__ = "0.1.0"

# public name -> module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    # config
    "read_config": "config.files",
    "read_document": "config.files",
    "Config": "config.parse",
    "ModelConfig": "config.parse",
    "ProgramConfig": "config.parse",
    # the manager in-process, and over HTTP
    "Manager": "runtime.manager",
    "Client": "client",
    "ClientError": "client",
    # the request path
    "Pipeline": "gateway.pipeline",
    "Service": "service",
    "build": "service",
    "Call": "gateway.pipeline",
    "UsageRecord": "accounting.record",
    # errors (errors.py's hierarchy)
    "LLMManagerError": "errors",
    "ConfigError": "errors",
    "BadRequest": "errors",
    "AuthenticationError": "errors",
    "PermissionDenied": "errors",
    "ModelNotFound": "errors",
    "RateLimited": "errors",
    "QueueFull": "errors",
    "BudgetExceeded": "errors",
    "Unavailable": "errors",
    "NoCapacity": "errors",
    "StartFailed": "errors",
    "UpstreamError": "errors",
    "UpstreamTimeout": "errors",
    # notebook helpers (these import ipywidgets when first used)
    "start_demo": "notebook",
    "DemoHandle": "notebook",
    "control_panel": "notebook",
    "ControlPanel": "notebook",
    "dashboard": "notebook",
}

__all__ = sorted(["__version__", *_EXPORTS])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
