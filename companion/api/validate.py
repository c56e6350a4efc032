"""Request parsing shared by the handlers: every bad input becomes a BadRequest with a reason."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from werkzeug.datastructures import FileStorage

from ..config import CompanionLimits, GenerationSettings, ModelSettings, limits
from ..dates import parse_date
from ..errors import BadRequest

MAX_TEXT = 100_000
MAX_NAME = 200


MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def json_object() -> dict:
    """The request body as a JSON object (the Content-Type header is not required)."""
    try:
        data = request.get_json(force=True, silent=True)
    except RecursionError:
        raise BadRequest(f"the JSON body nests too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body nests too deeply (at most {MAX_JSON_DEPTH} levels)")
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
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):   # not "²", not 5000 digits
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"'{key}' is required and must be an integer")
    if not minimum <= value <= maximum:
        raise BadRequest(f"'{key}' must be between {minimum} and {maximum}")
    return value


def date_field(body: dict, key: str) -> str | None:
    """An optional date (ISO 8601, seconds or milliseconds since 1970, SillyTavern's forms) as
    stored, UTC ISO 8601; None when absent."""
    value = body.get(key)
    if value in (None, ""):
        return None
    date = parse_date(value)
    if date is None:
        raise BadRequest(f"'{key}' must be a date, e.g. 2026-11-27T15:00:00+01:00")
    return date


def memory_limit(body: dict, key: str, setting: str | None = None) -> int:
    """A companion's long_term_mem or short_term_mem (named `setting`, given as body[key]) within
    the bounds config.py declares for it."""
    limit = limits(CompanionLimits)[setting or key]
    return int_field(body, key, minimum=int(limit.ge), maximum=int(limit.le))


def bool_field(body: dict, key: str) -> bool:
    """A required boolean field (1 and 0 are accepted, as /api/companionData returns them)."""
    value = body.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadRequest(f"'{key}' is required and must be true or false")


def uploaded_file(what: str) -> tuple[bytes, dict, FileStorage | None]:
    """An uploaded file: the multipart field 'file' (with the other form fields), or the raw body
    (with the query string). Returns the bytes, the fields and the upload (None for a raw body)."""
    if not request.files:
        return raw_body(), request.args.to_dict(), None
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest(f"send the {what} in the multipart field 'file'")
    data = upload.read()
    if not data:
        raise BadRequest("the uploaded file is empty")
    return data, request.form.to_dict(), upload


def raw_body() -> bytes:
    """The raw request body (its size is bounded by the app's body limit)."""
    data = request.get_data(cache=False)
    if not data:
        raise BadRequest("the request body is empty")
    return data


GENERATION_LIMITS = {name: limit for name, limit in limits(GenerationSettings).items() if limit.kind in (int, float)}
STOP_LIMIT = limits(GenerationSettings)["stop"]


def generation_settings(body: dict) -> dict:
    """The generation settings present in a body, each checked: JSON numbers in range, stop a list."""
    values: dict[str, Any] = {}
    for key, limit in GENERATION_LIMITS.items():
        if key not in body or body[key] is None:
            continue
        value = body[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (limit.kind is int and isinstance(value, float) and not value.is_integer()):
            raise BadRequest(f"'{key}' must be {'an integer' if limit.kind is int else 'a number'}")
        problem = limit.check(value, f"'{key}'")
        if problem:
            raise BadRequest(problem)
        values[key] = limit.kind(value)
    if body.get("stop") is not None:
        stop = body["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if (not isinstance(stop, list) or len(stop) > STOP_LIMIT.max_items
                or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stop)):
            raise BadRequest(f"'stop' must be a list of at most {STOP_LIMIT.max_items} non-empty strings")
        values["stop"] = stop
    return values


def wants_stream(body: dict | None = None) -> bool:
    """Whether the client asked for Server-Sent Events (Accept header, "stream": true or ?stream=1)."""
    if "text/event-stream" in request.headers.get("Accept", ""):
        return True
    if body and body.get("stream") is True:
        return True
    return request.args.get("stream", "").lower() in ("1", "true", "yes")


def optional_json_object() -> dict:
    """A JSON object body when there is one; {} for an empty body (GET, or POST without body)."""
    if not request.get_data(cache=True):
        return {}
    return json_object()


MODEL_LIMITS = {name: limit for name, limit in limits(ModelSettings).items()
                if name in ("n_ctx", "n_threads", "n_batch", "n_gpu_layers")}   # declared in config.py


def model_settings(body: Any) -> dict:
    """Model settings to change at run time, each checked."""
    if not isinstance(body, dict):
        raise BadRequest("'model' must be an object")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key in MODEL_LIMITS:
            low, high = int(MODEL_LIMITS[key].ge or 0), int(MODEL_LIMITS[key].le or 0)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise BadRequest(f"'model.{key}' must be an integer between {low} and {high}")
        elif key in ("flash_attn", "use_mmap"):
            if not isinstance(value, bool):
                raise BadRequest(f"'model.{key}' must be true or false")
        elif key in ("path", "chat_template"):
            if not isinstance(value, str) or not value.strip():
                raise BadRequest(f"'model.{key}' must be a non-empty string")
        else:
            raise BadRequest(f"unknown model setting 'model.{key}'")
        values[key] = value
    return values
