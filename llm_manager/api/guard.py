"""The first check on every request, before any routing: who may drive a manager that listens on a workstation.

Any web page the user opens can make the browser send requests to ``127.0.0.1:8080``. Three checks keep such a
page from acting (the same class of bug Ollama and others fixed):

- **Host** (DNS rebinding): a hostile name that resolves to 127.0.0.1 arrives with ``Host: evil.example``.
  Only loopback names, IP literals of this machine (a rebinding attack always uses a name), this machine's
  host name, ``program.host`` and ``program.allowed_hosts`` are accepted, on every path.
- **Origin** (cross-site requests and websockets): a state-changing request (any method but GET/HEAD/OPTIONS)
  or a websocket upgrade whose ``Origin`` is neither the manager's own origin nor in ``program.cors_origins``
  is refused. Requests without ``Origin`` (curl, SDKs) are not browsers' cross-site requests and pass.
- **Content type**: writes to ``/api/`` carry ``application/json`` (or no body at all), so an HTML form or a
  ``text/plain`` fetch, which a browser sends without asking, cannot smuggle a JSON body.

A refused request gets a JSON 403 (415 for the content type) and reaches no handler.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
from tornado.httputil import HTTPHeaders

from ..config.parse import ProgramConfig

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
SECRET_PARAM = re.compile(r"([?&][^=&]*(?:token|key|secret|password|ticket|auth)[^=&]*=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": "permission_error" if self.status == 403
                          else "invalid_request_error", "param": None, "code": self.code}}


def redact_uri(uri: str) -> str:
    """A request URI fit for a log line: the values of token-, key- and secret-like query parameters hidden."""
    return SECRET_PARAM.sub(r"\1***", uri) if "?" in uri else uri


def split_host(value: str) -> str:
    """The host name or address of a ``Host`` header value or URL netloc, lower case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _local_addresses() -> set[str]:
    """This machine's own IP addresses: a Host header naming one of them cannot come from DNS rebinding."""
    out: set[str] = set()
    try:
        for addrs in psutil.net_if_addrs().values():
            out.update(a.address.split("%")[0].lower() for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except OSError:
        pass
    return out


def is_websocket_upgrade(headers: HTTPHeaders) -> bool:
    return headers.get("Upgrade", "").lower() == "websocket"


class RequestGuard:
    """Host, Origin and content-type checks for one manager (see the module docstring)."""

    def __init__(self, program: ProgramConfig):
        self.any_host = "*" in program.allowed_hosts
        names = {n.lower().rstrip(".") for n in program.allowed_hosts if n != "*"}
        self.suffixes = tuple(n for n in names if n.startswith("."))
        self.hosts = {n for n in names if not n.startswith(".")} | set(LOOPBACK_NAMES) | _local_addresses()
        hostname = socket.gethostname().lower()
        self.hosts |= {hostname, f"{hostname}.local"}
        if program.host not in ("", "0.0.0.0", "::"):
            self.hosts.add(split_host(program.host))
        self.any_origin = "*" in program.cors_origins
        self.origins = {o.lower().rstrip("/") for o in program.cors_origins if o != "*"}

    def host_allowed(self, host: str) -> bool:
        if self.any_host or not host:  # HTTP/1.0 without Host: not a browser
            return True
        name = split_host(host)
        if name in self.hosts or name.endswith(".localhost") or name.endswith(self.suffixes or ("\0",)):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def origin_allowed(self, origin: str, host: str) -> bool:
        """The manager's own origin (the Host this request was sent to) or one of ``program.cors_origins``."""
        origin = origin.strip().lower().rstrip("/")
        if self.any_origin or origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host.strip().lower()

    def check(self, method: str, path: str, headers: HTTPHeaders) -> Refusal | None:
        """None when the request may go on, else the answer that refuses it."""
        host = headers.get("Host", "")
        if not self.host_allowed(host):
            return Refusal(403, "host_not_allowed",
                           f"Host {host!r} is not allowed (DNS rebinding protection): add its name to "
                           "program.allowed_hosts to reach the manager by that name")
        origin = headers.get("Origin")
        if origin is not None and (method not in SAFE_METHODS or is_websocket_upgrade(headers)):
            if not self.origin_allowed(origin, host):
                return Refusal(403, "origin_not_allowed",
                               f"cross-origin request from {origin} refused: only the manager's own origin and "
                               "program.cors_origins may change state or open a websocket")
        if method not in SAFE_METHODS and path.startswith("/api/") and not _json_or_empty(headers):
            return Refusal(415, "unsupported_media_type",
                           "management writes take a JSON body: send Content-Type: application/json")
        return None

    def websocket_origins(self, port: int, extra: Iterable[str] = ()) -> set[str]:
        """Bokeh's own websocket allow-list (``host:port`` patterns), kept in line with this guard."""
        if self.any_host or self.any_origin:
            return {"*"}
        names = {f"[{h}]" if ":" in h else h for h in self.hosts} | {"127.0.0.1", "[::1]"}
        names |= {f"*{s}" for s in self.suffixes}
        out = {f"{n}:{port}" for n in names}
        for o in (*self.origins, *extra):
            netloc = urlsplit(o).netloc
            out.add(netloc if ":" in netloc.rsplit("]", 1)[-1] else f"{netloc}:80")
        return out


def _json_or_empty(headers: HTTPHeaders) -> bool:
    ctype = headers.get("Content-Type", "")
    if ctype:
        return ctype.split(";", 1)[0].strip().lower() == "application/json"
    return headers.get("Content-Length", "0").strip() in ("", "0") and "Transfer-Encoding" not in headers
