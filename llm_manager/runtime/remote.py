"""A remote upstream: an OpenAI-compatible endpoint serving a model that the manager never starts or stops.

Its health is kept two ways: passively (a connect error or a 5xx answer puts it in a cool-down that doubles with
each failure in a row) and actively (``probe``: ``GET {url}/models``, when a cool-down ends and every
``PROBE_EVERY`` seconds while healthy). A cooling upstream is not routed to; a successful probe brings it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ..config.serving import UpstreamSpec

PROBE_EVERY = 10.0  # seconds between probes of a healthy upstream
COOL_FIRST = 1.0  # seconds of the first cool-down; doubled per failure in a row
COOL_MAX = 60.0


class Remote:
    """One remote upstream of a model, as a routing target (see ``runtime.group``)."""

    remote = True

    def __init__(self, spec: UpstreamSpec, model: str, on_change: Callable[[Remote, str, str], None]):
        self.spec = spec
        self.model = model  # the model this upstream serves here
        self.on_change = on_change
        self.in_flight = 0
        self.failures = 0  # in a row
        self.cooling_until = 0.0  # monotonic; 0: healthy
        self.last_error: str | None = None
        self.next_probe = time.monotonic() + PROBE_EVERY
        self.last_used = 0.0
        self.headers = {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}

    @property
    def id(self) -> str:
        return self.spec.host

    @property
    def limit(self) -> int | None:
        return self.spec.max_concurrency

    @property
    def weight(self) -> float:
        return self.spec.weight

    @property
    def upstream_model(self) -> str:
        return self.spec.model or self.model

    @property
    def usable(self) -> bool:
        return self.cooling_until == 0.0

    def cooling_s(self, now: float | None = None) -> float:
        return max(0.0, self.cooling_until - (now or time.monotonic())) if self.cooling_until else 0.0

    def url(self, endpoint: str) -> str:
        """The upstream URL of ``endpoint`` ("v1/chat/completions"): the base URL already ends in /v1."""
        if endpoint.startswith("v1/"):
            return f"{self.spec.url}/{endpoint[3:]}"
        return f"{self.spec.url.removesuffix('/v1')}/{endpoint}"

    def failed(self, reason: str) -> None:
        """A connect error or 5xx: cool down (longer each time in a row) until a probe succeeds."""
        self.failures += 1
        self.last_error = reason
        wait = min(COOL_MAX, COOL_FIRST * 2 ** (self.failures - 1))
        was_usable = self.usable
        self.cooling_until = time.monotonic() + wait
        self.next_probe = self.cooling_until
        if was_usable:
            self.on_change(self, "upstream-down", f"upstream {self.id} cooling down for {wait:g} s: {reason}")

    def answered(self, first_byte: float | None, cold: bool = False) -> None:
        """It answered a request (2xx-4xx): its failures in a row end."""
        self.failures = 0

    def probe_due(self, now: float) -> bool:
        return now >= self.next_probe

    async def probe(self, client: httpx.AsyncClient) -> None:
        """``GET {url}/models``: a 2xx answer brings a cooling upstream back; a failure extends its cool-down."""
        self.next_probe = time.monotonic() + PROBE_EVERY
        try:
            r = await client.get(f"{self.spec.url}/models", headers=self.headers, timeout=5.0)
            ok, why = r.status_code < 300, f"health check answered {r.status_code}"
        except httpx.HTTPError as exc:
            ok, why = False, f"health check failed: {type(exc).__name__}"
        if ok and not self.usable:
            self.cooling_until, self.failures, self.last_error = 0.0, 0, None
            self.on_change(self, "upstream-up", f"upstream {self.id} is back (health check passed)")
        elif not ok:
            self.failed(why)

    def info(self) -> dict:
        return {"id": self.id, "url": self.spec.url, "model": self.upstream_model, "healthy": self.usable,
                "cooling_s": round(self.cooling_s(), 1), "in_flight": self.in_flight, "failures": self.failures,
                "last_error": self.last_error, "weight": self.weight, "max_concurrency": self.limit,
                "last_used": self.last_used or None}
