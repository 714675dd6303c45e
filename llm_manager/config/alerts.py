"""``program.alerts``: where alerts go (webhooks, the log) and which kinds each webhook takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .readers import _bool, _dict, _expect, _int, _number, _str, _str_list

ALERT_KINDS = ("budget", "crash", "device", "store")
WEBHOOK_KEYS = {"url", "secret", "kinds", "retries", "timeout"}


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    secret: str | None = None  # signs each body (HMAC-SHA256); never shown
    kinds: tuple[str, ...] = ALERT_KINDS
    retries: int = 5
    timeout: float = 5.0

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookSpec(url={self.url!r}, kinds={self.kinds!r})"


@dataclass(frozen=True)
class AlertsSpec:
    webhooks: tuple[WebhookSpec, ...] = ()
    log: bool = True  # every alert is also a WARNING log line


def _webhook(raw: Any, path: str) -> WebhookSpec:
    _dict(raw, path)
    unknown = sorted(set(raw) - WEBHOOK_KEYS)
    _expect(not unknown, f"{path}.{unknown[0]}" if unknown else path,
            f"unknown key; a webhook takes {', '.join(sorted(WEBHOOK_KEYS))}")
    url = _str(raw.get("url"), f"{path}.url")
    _expect(urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).netloc), f"{path}.url",
            "expected an http(s) URL")
    kinds = _str_list(raw["kinds"], f"{path}.kinds") if "kinds" in raw else ALERT_KINDS
    for i, kind in enumerate(kinds):
        _expect(kind in ALERT_KINDS, f"{path}.kinds[{i}]", f"expected one of {', '.join(ALERT_KINDS)}")
    return WebhookSpec(url, _str(raw["secret"], f"{path}.secret") if "secret" in raw else None, kinds,
                       _int(raw.get("retries", 5), f"{path}.retries", 0, 20),
                       _number(raw.get("timeout", 5.0), f"{path}.timeout", 0.1))


def parse_alerts(raw: Any, path: str) -> AlertsSpec:
    _dict(raw, path)
    unknown = sorted(set(raw) - {"webhooks", "log"})
    _expect(not unknown, f"{path}.{unknown[0]}" if unknown else path, "unknown key; alerts take webhooks and log")
    hooks = raw.get("webhooks", [])
    _expect(isinstance(hooks, list), f"{path}.webhooks", "expected list of {url, secret, kinds}")
    return AlertsSpec(tuple(_webhook(h, f"{path}.webhooks[{i}]") for i, h in enumerate(hooks)),
                      _bool(raw.get("log", True), f"{path}.log"))
