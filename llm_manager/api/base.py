"""Shared handler behaviour: OpenAI-style JSON errors (never a traceback), CORS, JSON rendering."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web
from tornado.httputil import HTTPServerRequest

from ..accounting.layer import Accounting
from ..accounting.security import Caller, presented_key
from ..errors import LLMManagerError
from ..gateway.validation import json_object
from ..runtime.manager import Manager
from ..service import Service
from .intake import cors_headers

log = logging.getLogger("llm_manager.api")


def caller_of(request: HTTPServerRequest, token: str | None = None) -> Caller:
    """The transport's part of authorization: the key a request presents (or ``token``) and its address."""
    headers = request.headers
    return Caller(token or presented_key(headers.get("Authorization"), headers.get("x-api-key")),
                  request.remote_ip or "")


class BaseHandler(tornado.web.RequestHandler):
    """Every handler gets the composed service: its manager (runtime) and accounting (keys, usage, cost)."""

    service: Service
    manager: Manager
    accounting: Accounting

    def initialize(self, service: Service) -> None:
        self.service, self.manager, self.accounting = service, service.manager, service.accounting

    def set_default_headers(self) -> None:
        for k, v in cors_headers(self.application.settings.get("cors_origins"), self.request.headers.get("Origin")).items():
            self.set_header(k, v)

    def options(self, *args: Any) -> None:
        self.set_status(204)
        self.finish()

    def check_xsrf_cookie(self) -> None:  # an API, authenticated by bearer keys, not cookies
        return

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, default=str))

    def send_llm_error(self, exc: LLMManagerError) -> None:
        if self._finished:
            return
        if self._headers_written:
            self.finish()
            return
        self.clear()
        self.set_default_headers()
        for k, v in exc.headers.items():
            self.set_header(k, v)
        self.write_json(exc.body(), exc.status)

    def json_body(self) -> dict[str, Any]:
        return json_object(self.request.body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's last resort: still an OpenAI-style body, never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LLMManagerError):
            self.send_llm_error(exc)
            return
        if isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or self._reason
        else:
            message = "internal error; see the server log" if status_code >= 500 else self._reason
        kind = "server_error" if status_code >= 500 else "invalid_request_error"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status_code}}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, LLMManagerError):
            self.send_llm_error(e)
            return
        super()._handle_request_exception(e)


class NotFoundHandler(BaseHandler):
    """Unknown paths get a JSON 404 like everything else."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, f"no route for {self.request.method} {self.request.path}")
