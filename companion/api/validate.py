"""Request parsing shared by the handlers, for what the body models of schemas.py do not say: the
body as a JSON object (bounded nesting), uploads, whether a stream is asked for, and model
settings changed at run time. Every bad input becomes a BadRequest with a reason."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from werkzeug.datastructures import FileStorage

from companion.api.schemas import GENERATION_LIMITS, Body, Generation, parse
from companion.config import ModelSettings, limits
from companion.errors import BadRequest

__all__ = ["GENERATION_LIMITS", "generation_settings", "json_body", "json_object", "model_settings",
           "optional_json_object", "parse", "raw_body", "uploaded_file", "wants_stream"]

B = TypeVar("B", bound=Body)

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


def json_body(model: type[B]) -> B:
    """The request body, a JSON object, checked against a body model of schemas.py."""
    return parse(model, json_object())


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


def generation_settings(body: dict) -> dict:
    """The generation settings present in a body (null ones left out), each checked against
    config.py's bounds by the Generation model; other keys are the caller's business."""
    return parse(Generation, body).given()


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
