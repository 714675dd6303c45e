"""Every error llm-manager raises, in one hierarchy, each mapped to an OpenAI-style body and HTTP status."""

from __future__ import annotations

from typing import Any


class LLMManagerError(Exception):
    """Base of all llm-manager errors. ``status`` and ``type`` shape the OpenAI-style error body."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        error.update(self.extra)
        return {"error": error}


class ConfigError(LLMManagerError):
    """The config is invalid; ``path`` is the JSON path of the offending value."""

    status = 400
    type = "invalid_config"

    def __init__(self, path: str, expected: str):
        super().__init__(f"{path}: {expected}" if path else expected)
        self.path = path
        self.expected = expected


class BadRequest(LLMManagerError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"


class AuthenticationError(LLMManagerError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LLMManagerError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(LLMManagerError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(LLMManagerError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RateLimited(LLMManagerError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class QueueFull(RateLimited):
    code = "queue_full"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class Unavailable(LLMManagerError):
    """The model cannot be served now (does not fit, start failed, crashed and backing off)."""

    status = 503
    type = "service_unavailable"
    code = "model_unavailable"


class NoCapacity(Unavailable):
    code = "insufficient_resources"


class StartFailed(Unavailable):
    code = "model_start_failed"


class UpstreamError(LLMManagerError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
