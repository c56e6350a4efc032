"""Domain exceptions and the one JSON error shape.

Services raise these; the app turns them into ``{"error": {"code", "message"}}`` (modern routes)
or a plain-text reason (the AI Companion API), with the exception's HTTP status.
"""

from __future__ import annotations

from flask import Response, jsonify


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


class Unauthorized(CompanionError):
    status = 401
    code = "unauthorized"


class Forbidden(CompanionError):
    status = 403
    code = "forbidden"


class NotFound(CompanionError):
    status = 404
    code = "not_found"


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


class ModelUnavailable(CompanionError):
    status = 503
    code = "model_unavailable"


OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}


def error_response(status: int, code: str, message: str, plain_text: bool,
                   retry_after: int | None = None, request_id: str | None = None,
                   dialect: str = "") -> Response:
    """The one error shape: JSON for modern routes, plain text for the AI Companion API, and
    OpenAI's own shape under /v1.

    The request id (also in the X-Request-ID header and the log) is repeated in the body."""
    if plain_text:
        body = f"{message} [request {request_id}]" if request_id else message
        response = Response(body, status=status, mimetype="text/plain")
    elif dialect == "openai":
        response = jsonify({"error": {"message": message, "type": OPENAI_TYPES.get(status, "api_error"),
                                      "param": None, "code": code, "request_id": request_id}})
        response.status_code = status
    else:
        error = {"code": code, "message": message}
        if request_id:
            error["request_id"] = request_id
        response = jsonify({"error": error})
        response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
