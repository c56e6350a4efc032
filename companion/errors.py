"""Domain exceptions, free of HTTP.

Services and the pure parsers raise these; app.py turns them into each dialect's error shape
(``{"error": {"code", "message"}}``, a plain-text reason for the AI Companion API, OpenAI's shape
under /v1) with the exception's status, which is only an attribute here.
"""

from __future__ import annotations


class CompanionError(Exception):
    """Base of every error a client can be told about."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(CompanionError):
    status = 400
    code = "bad_request"


class InvalidInput(BadRequest, ValueError):
    """Bytes or JSON a parser cannot use (a card, a lorebook, an image, a chat file): the base of
    the parsers' own errors, so that a service need not convert them."""


class Unauthorized(CompanionError):
    status = 401
    code = "unauthorized"


class Forbidden(CompanionError):
    status = 403
    code = "forbidden"


class NotFound(CompanionError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    """A model name that names no model here (Ollama and OpenAI clients offer to pull on it)."""
    code = "model_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class Conflict(CompanionError):
    status = 409
    code = "conflict"


class MisdirectedRequest(CompanionError):
    status = 421
    code = "misdirected_request"


class PayloadTooLarge(CompanionError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CompanionError):
    status = 415
    code = "unsupported_media_type"


class Busy(CompanionError):
    status = 429
    code = "busy"


class BadGateway(CompanionError):
    status = 502
    code = "bad_gateway"


class GatewayTimeout(CompanionError):
    status = 504
    code = "gateway_timeout"


class NotAvailable(CompanionError):
    """Something the backend in use cannot do (tokenizing, with a remote model)."""
    status = 501
    code = "not_implemented"


class ModelUnavailable(CompanionError):
    status = 503
    code = "model_unavailable"


class TooManyStreams(CompanionError):
    """Every slot for a long-lived stream (the live events) is taken."""
    status = 503
    code = "too_many_streams"
