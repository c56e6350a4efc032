"""The Flask application factory."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from companion.api import (
    chats,
    companions,
    compat,
    events,
    groups,
    kobold,
    llamacpp,
    lorebooks,
    memories,
    ollama,
    openai,
    presets,
    rest,
    voice,
)
from companion.api.security import add_cors_headers, check_request
from companion.config import Settings
from companion.errors import CompanionError, storage_full
from companion.formats.jsontext import mend_surrogates
from companion.services import Services, build_services

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "web"

# The page loads nothing but its own files: no inline scripts or styles, no other origins.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                           "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")


LLAMACPP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                  501: "not_supported_error", 503: "unavailable_error"}
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
    elif dialect == "ollama":      # Ollama: the message alone
        response = jsonify({"error": message})
        response.status_code = status
    elif dialect == "llamacpp":    # llama.cpp's server: the status as a number, and a type
        response = jsonify({"error": {"code": status, "message": message, "request_id": request_id,
                                      "type": LLAMACPP_TYPES.get(status, "server_error")}})
        response.status_code = status
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


class RequestJSON(DefaultJSONProvider):
    """Flask's JSON, but request bodies read with their lone surrogates mended."""

    def loads(self, s: str | bytes, **kwargs) -> object:
        return super().loads(mend_surrogates(s), **kwargs)


class RowIdConverter(IntegerConverter):
    """<int:...> in routes: a non-negative integer that fits a SQLite row id."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """Build the app from Settings; without services, build them and start loading the models."""
    app = Flask(__name__, static_folder=None)
    app.json = RequestJSON(app)
    app.url_map.converters["int"] = RowIdConverter   # ids past SQLite's range are a 404, not a 500
    if services is None:
        services = build_services(settings)
        services.start()
    app.extensions["companion"] = services
    app.config["MAX_CONTENT_LENGTH"] = int(settings.server.max_body_mb * 1024 * 1024)
    app.json.sort_keys = False
    app.register_blueprint(compat.bp)
    app.register_blueprint(rest.bp)
    app.register_blueprint(companions.bp)
    app.register_blueprint(chats.bp)
    app.register_blueprint(lorebooks.bp)
    app.register_blueprint(presets.bp)
    app.register_blueprint(memories.bp)
    app.register_blueprint(openai.bp)
    app.register_blueprint(kobold.bp)
    app.register_blueprint(llamacpp.bp)
    app.register_blueprint(ollama.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(groups.bp)
    app.register_blueprint(voice.bp)

    @app.before_request
    def access_rules() -> None:
        g.request_id = uuid.uuid4().hex[:12]
        check_request(request, settings.server)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return add_cors_headers(request, response, settings.server)

    @app.get("/")
    def index() -> Response:
        """The web page (static/index.html); it needs no key to load, the API calls do."""
        response = send_from_directory(STATIC_DIR, "index.html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/static/<path:filename>", endpoint="static")
    def static_file(filename: str) -> Response:
        """The page's scripts, styles and icons (revalidated, so an upgrade shows at once)."""
        response = send_from_directory(STATIC_DIR, filename, max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    def failed(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
        """Log a 4xx/5xx with its request id (never the body: prompts are private) and answer it."""
        request_id = g.get("request_id") or uuid.uuid4().hex[:12]
        log.log(logging.ERROR if status >= 500 else logging.WARNING, "[%s] %s %s -> %d %s: %s",
                request_id, request.method, request.path, status, code, message)
        dialect = "openai" if request.path.startswith("/v1/") else ""
        dialect = request.blueprint if request.blueprint in ("llamacpp", "ollama") else dialect
        return error_response(status, code, message, request.blueprint == "compat", retry_after, request_id,
                              dialect)

    @app.errorhandler(CompanionError)
    def companion_error(err: CompanionError) -> Response:
        return failed(err.status, err.code, err.message, err.retry_after)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        code = (err.name or "error").lower().replace(" ", "_")
        return failed(err.code or 500, code, err.description or err.name)

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        full = storage_full(err)    # a full disk under any write (a file, SQLite, Chroma): 507, not 500
        if full is not None:
            log.error("[%s] %s %s: the disk is full (%s)", g.get("request_id"), request.method, request.path, err)
            return failed(full.status, full.code, full.message)
        log.exception("[%s] unhandled error on %s %s", g.get("request_id"), request.method, request.path)
        return failed(500, "internal_error", "internal error; see the daemon's log")

    return app
