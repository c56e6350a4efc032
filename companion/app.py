"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .api import companions, compat, lorebooks, rest
from .config import Settings
from .errors import CompanionError, error_response
from .security import add_cors_headers, check_request
from .services import Services, build_services

log = logging.getLogger(__name__)

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>companion</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>companion is running</h1>
<p>The AI Companion API is served under <code>/api</code>; see <a href="/api/status">/api/status</a>.</p>
</body></html>
"""


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """Build the app from Settings; without services, build them and start loading the models."""
    app = Flask(__name__, static_folder=None)
    if services is None:
        services = build_services(settings)
        services.start()
    app.extensions["companion"] = services
    app.config["MAX_CONTENT_LENGTH"] = int(settings.server.max_body_mb * 1024 * 1024)
    app.json.sort_keys = False
    app.register_blueprint(compat.bp)
    app.register_blueprint(rest.bp)
    app.register_blueprint(companions.bp)
    app.register_blueprint(lorebooks.bp)

    @app.before_request
    def access_rules() -> None:
        check_request(request, settings.server)

    @app.after_request
    def cors(response: Response) -> Response:
        return add_cors_headers(request, response, settings.server)

    @app.get("/")
    def index() -> Response:
        return Response(INDEX_HTML, mimetype="text/html")

    def plain_text() -> bool:
        return request.blueprint == "compat"

    @app.errorhandler(CompanionError)
    def companion_error(err: CompanionError) -> Response:
        if err.status >= 500:
            log.error("%s %s: %s", request.method, request.path, err.message)
        return error_response(err.status, err.code, err.message, plain_text(), err.retry_after)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        code = (err.name or "error").lower().replace(" ", "_")
        return error_response(err.code or 500, code, err.description or err.name, plain_text())

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the daemon's log", plain_text())

    return app
