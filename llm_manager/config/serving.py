"""How a model is served besides its one local process: more instances, remote upstreams, fallbacks.

All additive keys of a model block; a seed config has none of them and keeps one local process per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .readers import _dict, _expect, _int, _number, _str, _str_list

SERVING_KEYS = ("max_instances", "min_instances", "ports", "scale_up_after", "upstreams", "fallbacks")
UPSTREAM_KEYS = {"url", "api_key", "model", "weight", "max_concurrency"}


@dataclass(frozen=True)
class UpstreamSpec:
    """A remote OpenAI-compatible endpoint serving a model; the manager never starts or stops it."""

    url: str  # as an OpenAI client's base_url: "https://host/v1"
    api_key: str | None = None
    model: str | None = None  # the name sent upstream; None: the model's own name
    weight: float = 1.0  # breaks ties between targets with as many requests in flight
    max_concurrency: int | None = None

    @property
    def host(self) -> str:
        """The URL's host[:port]: how answers and the dashboard name this upstream (never its key)."""
        return urlsplit(self.url).netloc

    def __repr__(self) -> str:  # never show the key (logs, tracebacks)
        return f"UpstreamSpec(url={self.url!r}, model={self.model!r}, weight={self.weight:g})"


def _upstream(raw: Any, path: str) -> UpstreamSpec:
    _dict(raw, path)
    unknown = sorted(set(raw) - UPSTREAM_KEYS)
    _expect(not unknown, f"{path}.{unknown[0]}" if unknown else path,
            f"unknown key; an upstream takes {', '.join(sorted(UPSTREAM_KEYS))}")
    url = _str(raw.get("url"), f"{path}.url").rstrip("/")
    parts = urlsplit(url)
    _expect(parts.scheme in ("http", "https") and bool(parts.netloc), f"{path}.url",
            "expected an http(s) base URL ending in /v1, like https://api.example.com/v1")
    _expect(parts.path.endswith("/v1"), f"{path}.url",
            "expected a base URL ending in /v1 (as an OpenAI client's base_url)")
    maxc = raw.get("max_concurrency")
    return UpstreamSpec(
        url=url,
        api_key=_str(raw["api_key"], f"{path}.api_key") if "api_key" in raw else None,
        model=_str(raw["model"], f"{path}.model") if "model" in raw else None,
        weight=_number(raw.get("weight", 1.0), f"{path}.weight", 0.001),
        max_concurrency=None if maxc is None else _int(maxc, f"{path}.max_concurrency", 1),
    )


def parse_serving(raw: dict[str, Any], p: str, port: int | None) -> dict[str, Any]:
    """The serving keys of model block ``raw`` (at JSON path ``p``) as ModelConfig keyword arguments."""
    kw: dict[str, Any] = {}
    max_instances = _int(raw.get("max_instances", 1), f"{p}.max_instances", 1, 64)
    min_instances = _int(raw.get("min_instances", 0), f"{p}.min_instances", 0)
    _expect(min_instances <= max_instances, f"{p}.min_instances", f"expected at most max_instances ({max_instances})")
    kw["max_instances"], kw["min_instances"] = max_instances, min_instances
    if "ports" in raw:
        ports = raw["ports"]
        _expect(isinstance(ports, list) and len(ports) == max_instances, f"{p}.ports",
                f"expected a list of {max_instances} ports (one per instance, max_instances {max_instances})")
        kw["ports"] = tuple(_int(v, f"{p}.ports[{i}]", 1, 65535) for i, v in enumerate(ports))
        _expect(len(set(kw["ports"])) == len(kw["ports"]), f"{p}.ports", "expected distinct ports")
    elif port is not None:
        _expect(port + max_instances - 1 <= 65535, f"{p}.max_instances", "expected port + max_instances - 1 <= 65535")
    if "scale_up_after" in raw:
        kw["scale_up_after"] = _number(raw["scale_up_after"], f"{p}.scale_up_after")
    if "upstreams" in raw:
        ups = raw["upstreams"]
        _expect(isinstance(ups, list), f"{p}.upstreams", "expected list of {url, api_key, model, weight, max_concurrency}")
        kw["upstreams"] = tuple(_upstream(u, f"{p}.upstreams[{i}]") for i, u in enumerate(ups))
    if "fallbacks" in raw:
        kw["fallbacks"] = _str_list(raw["fallbacks"], f"{p}.fallbacks")
    return kw
