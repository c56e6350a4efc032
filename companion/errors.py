"""Domain exceptions, free of HTTP.

Services and the pure parsers raise these; app.py turns them into each dialect's error shape
(``{"error": {"code", "message"}}``, a plain-text reason for the AI Companion API, OpenAI's shape
under /v1) with the exception's status, which is only an attribute here.
"""

from __future__ import annotations

import errno
import sqlite3
from contextlib import contextmanager
from typing import Iterator


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


class StorageFull(CompanionError):
    """The disk (or quota) that holds the data dir is full: what was asked was not saved, and
    the same request works again once there is space (no restart)."""
    status = 507
    code = "insufficient_storage"


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# what a wrapper's message says when the disk filled under it (SQLite's words, the OS's, Chroma's)
FULL_WORDS = ("database or disk is full", "no space left on device", "disk quota exceeded", "sqlite_full")
STORAGE_FULL_MESSAGE = "the disk that holds the data is full: nothing was saved; free some space and try again"


def storage_full(exc: BaseException | None) -> StorageFull | None:
    """The StorageFull an error means, when it or an error it wraps says the disk is full:
    SQLite's SQLITE_FULL, an OSError ENOSPC or EDQUOT, or a wrapper (Chroma's) naming either;
    None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFull):
            return exc
        if (isinstance(exc, OSError) and exc.errno in FULL_ERRNOS
                or (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF == sqlite3.SQLITE_FULL
                or any(words in str(exc).lower() for words in FULL_WORDS)):
            return StorageFull(STORAGE_FULL_MESSAGE)
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def full_disk_refused() -> Iterator[None]:
    """Raise a full disk under this block as StorageFull (any other error as it is)."""
    try:
        yield
    except CompanionError:
        raise
    except Exception as exc:
        full = storage_full(exc)
        if full is None:
            raise
        raise full from exc
