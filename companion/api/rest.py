"""The modern REST API (JSON in, JSON out, errors as {"error": {"code", "message"}})."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import services

bp = Blueprint("rest", __name__)


@bp.get("/api/status")
def status():
    """Version, model and embedder state, counts and the data dir."""
    return jsonify(services().status())


@bp.post("/api/abort")
def abort():
    """Stop the running generation after its current token; the partial reply is kept."""
    return jsonify({"aborted": services().chat.abort()})
