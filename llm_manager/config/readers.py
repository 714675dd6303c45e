"""Readers for one config value each: the right type, or a ConfigError naming its JSON path and what was expected."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def _expect(cond: bool, path: str, expected: str) -> None:
    if not cond:
        raise ConfigError(path, expected)


def _int(value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool), path, "expected integer")
    if minimum is not None:
        _expect(value >= minimum, path, f"expected integer >= {minimum}")
    if maximum is not None:
        _expect(value <= maximum, path, f"expected integer <= {maximum}")
    return value


def _number(value: Any, path: str, minimum: float = 0.0) -> float:
    _expect(isinstance(value, (int, float)) and not isinstance(value, bool), path, "expected number")
    _expect(value >= minimum, path, f"expected number >= {minimum:g}")
    return float(value)


def _bool(value: Any, path: str) -> bool:
    _expect(isinstance(value, bool), path, "expected true or false")
    return value


def _str(value: Any, path: str) -> str:
    _expect(isinstance(value, str) and value != "", path, "expected non-empty string")
    return value


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    _expect(isinstance(value, list), path, "expected list of strings")
    return tuple(_str(v, f"{path}[{i}]") for i, v in enumerate(value))


def _str_map(value: Any, path: str) -> dict[str, str]:
    _expect(isinstance(value, dict), path, "expected object of strings")
    return {k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _str(v, f"{path}.{k}"))
            for k, v in value.items()}


def _dict(value: Any, path: str) -> dict[str, Any]:
    _expect(isinstance(value, dict), path, "expected object")
    return value


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    _expect(value in choices, path, "expected one of " + ", ".join(f'"{c}"' for c in choices))
    return value
