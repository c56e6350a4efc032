"""The modern REST API (JSON in, JSON out, errors as {"error": {"code", "message"}})."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import services

bp = Blueprint("rest", __name__)


@bp.get("/api/status")
def status():
    """Version, model and embedder state, counts and the data dir."""
    return jsonify(services().status())
