"""A KoboldCpp-compatible API, for frontends that speak it (SillyTavern's Text Completion)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from companion import __version__
from companion.api import services
from companion.api.sse import event
from companion.api.validate import generation_settings, json_object
from companion.errors import BadRequest, CompanionError

bp = Blueprint("kobold", __name__)

KOBOLD_VERSION = "1.80"
# KoboldCpp name -> our generation setting
NAMES = {"max_length": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
         "min_p": "min_p", "rep_pen": "repeat_penalty", "sampler_seed": "seed", "stop_sequence": "stop"}


def kobold_request() -> tuple[str, dict, int | None]:
    """The prompt, the generation settings and the client's context size (max_context_length)
    of a KoboldCpp generate request, checked."""
    body = json_object()
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string")
    values = generation_settings({ours: body[theirs] for theirs, ours in NAMES.items() if theirs in body})
    context = body.get("max_context_length")
    if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context < 1):
        raise BadRequest("'max_context_length' must be a positive integer")
    return prompt, values, context


@bp.get("/api/v1/model")
def model():
    return jsonify({"result": f"koboldcpp/{services().generator.name}"})


@bp.get("/api/v1/info/version")
def info_version():
    return jsonify({"result": "1.2.5"})


@bp.get("/api/extra/version")
def extra_version():
    return jsonify({"result": "KoboldCpp", "version": KOBOLD_VERSION, "companion": __version__})


@bp.post("/api/v1/generate")
def generate():
    prompt, values, context = kobold_request()
    raw = services().turns.start_raw(prompt, values, context)
    return jsonify({"results": [{"text": "".join(raw.pieces())}]})


@bp.post("/api/extra/generate/stream")
def generate_stream():
    prompt, values, context = kobold_request()
    raw = services().turns.start_raw(prompt, values, context)

    class Body:
        def __init__(self) -> None:
            self.pieces = raw.pieces()

        def __iter__(self):
            try:
                for piece in self.pieces:
                    yield event("message", {"token": piece})
            except CompanionError as exc:   # reported, as the OpenAI and SSE streams do, not a silent end
                yield event("error", {"message": exc.message, "code": exc.code})

        def close(self) -> None:
            self.pieces.close()
            raw.close()

    return Response(Body(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@bp.post("/api/extra/abort")
def abort():
    return jsonify({"success": "true" if services().turns.abort() else "false"})
