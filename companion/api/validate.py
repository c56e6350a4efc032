"""Request parsing shared by the handlers: every bad input becomes a BadRequest with a reason."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import BadRequest

MAX_TEXT = 100_000
MAX_NAME = 200


def json_object() -> dict:
    """The request body as a JSON object (the Content-Type header is not required)."""
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def text_field(body: dict, key: str, *, allow_empty: bool = True, max_length: int = MAX_TEXT) -> str:
    """A required string field."""
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' is required and must be a string")
    if not allow_empty and not value.strip():
        raise BadRequest(f"'{key}' must not be empty")
    if len(value) > max_length:
        raise BadRequest(f"'{key}' is too long (at most {max_length} characters)")
    return value


def name_field(body: dict, key: str) -> str:
    """A required, non-empty, short name."""
    return text_field(body, key, allow_empty=False, max_length=MAX_NAME).strip()


def int_field(body: dict, key: str, *, minimum: int = 0, maximum: int = 1_000_000) -> int:
    """A required integer field (a string of digits is accepted, as the docs' examples quote it)."""
    value: Any = body.get(key)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"'{key}' is required and must be an integer")
    if not minimum <= value <= maximum:
        raise BadRequest(f"'{key}' must be between {minimum} and {maximum}")
    return value


def bool_field(body: dict, key: str) -> bool:
    """A required boolean field (1 and 0 are accepted, as /api/companionData returns them)."""
    value = body.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadRequest(f"'{key}' is required and must be true or false")


def raw_body() -> bytes:
    """The raw request body (its size is bounded by the app's body limit)."""
    data = request.get_data(cache=False)
    if not data:
        raise BadRequest("the request body is empty")
    return data
