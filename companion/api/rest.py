"""The modern REST API (JSON in, JSON out, errors as {"error": {"code", "message"}})."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from companion.api import services
from companion.api.schemas import ConfigBody, generation_changes
from companion.api.validate import json_object, model_settings, parse
from companion.config import GenerationSettings, initiative_problem
from companion.errors import BadRequest

bp = Blueprint("rest", __name__)


@bp.get("/api/status")
def status():
    """Version, model and embedder state, counts and the data dir."""
    return jsonify(services().status())


@bp.post("/api/abort")
def abort():
    """Stop the running generation after its current token; the partial reply is kept."""
    return jsonify({"aborted": services().turns.abort()})


@bp.get("/api/models")
def models():
    """The GGUF files the daemon can use, with size and chat template."""
    items = services().models.models()
    return jsonify({"items": items, "total": len(items)})


@bp.get("/api/config")
def get_config():
    """The model and generation settings in force, and a model still loading."""
    return jsonify(services().models.config())


@bp.put("/api/config")
def put_config():
    """Change model settings (a new model loads in the background, then takes over) and defaults."""
    body = json_object()
    parse(ConfigBody, body)      # no other keys; each part is checked below, as config.py and the model say
    initiative = body.get("initiative", {})
    if not isinstance(initiative, dict):
        raise BadRequest("'initiative' must be an object")
    problem = initiative_problem({k: v for k, v in initiative.items() if k != "enabled"})
    if problem or "enabled" in initiative:
        raise BadRequest(problem or "initiative.enabled is each companion's own setting (PATCH /api/companions/{id})")
    model = model_settings(body.get("model", {}))
    generation_body = body.get("generation", {})
    if not isinstance(generation_body, dict):
        raise BadRequest("'generation' must be an object")
    generation, removed = generation_changes(generation_body)
    built_in = GenerationSettings()
    for key in removed:   # null: back to the built-in default
        generation[key] = getattr(built_in, key)
    config = services().models.update(model, generation, initiative)
    response = jsonify(config)
    response.status_code = 202 if config["pending_model"] else 200
    return response


@bp.get("/api/companions/<int:companion_id>/generation")
def get_companion_generation(companion_id: int):
    """A companion's own generation settings over the global defaults."""
    return jsonify(services().companions.generation(companion_id, services().settings.generation))


@bp.patch("/api/companions/<int:companion_id>/generation")
def patch_companion_generation(companion_id: int):
    """Set (or, with null, remove) a companion's own generation settings."""
    values, removed = generation_changes(json_object())
    companions = services().companions
    companions.set_generation(companion_id, values, removed)
    return jsonify(companions.generation(companion_id, services().settings.generation))


@bp.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of every route."""
    from companion.api.openapi import openapi_document

    return jsonify(openapi_document(current_app.url_map))
