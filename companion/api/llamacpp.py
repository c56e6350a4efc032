"""llama.cpp's server API, the part frontends use: /health, /props, /completion, /tokenize and
/detokenize, over the same model (plain completions: nothing is stored or remembered)."""

from __future__ import annotations

import json
import time
from typing import Generator

from flask import Blueprint, Response, jsonify

from companion import __version__
from companion.api import services
from companion.api.validate import generation_settings, json_object
from companion.errors import BadRequest, ModelUnavailable

bp = Blueprint("llamacpp", __name__)

# llama.cpp name -> our generation setting
NAMES = {"n_predict": "max_tokens", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
         "min_p": "min_p", "repeat_penalty": "repeat_penalty", "stop": "stop", "seed": "seed"}


@bp.get("/health")
def health():
    """200 once the model is ready, 503 while it loads (as llama.cpp's server answers)."""
    state = services().turns.generator.state
    if state == "loading":
        raise ModelUnavailable("Loading model", retry_after=5)
    if state != "ready":
        raise ModelUnavailable(f"the model failed to load: {services().turns.generator.error}", retry_after=60)
    return jsonify({"status": "ok"})


@bp.get("/props")
def props():
    generator = services().turns.generator
    defaults = services().settings.generation
    return jsonify({
        "default_generation_settings": {
            "n_ctx": generator.n_ctx, "model": generator.path,
            "params": {"n_predict": defaults.max_tokens, "temperature": defaults.temperature,
                       "top_k": defaults.top_k, "top_p": defaults.top_p, "min_p": defaults.min_p,
                       "repeat_penalty": defaults.repeat_penalty, "stop": defaults.stop, "seed": defaults.seed}},
        "total_slots": 1,
        "model_path": generator.path,
        "chat_template": generator.template,
        "build_info": f"companion {__version__}",
    })


def completion_request() -> tuple[str, dict, bool]:
    body = json_object()
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string (token arrays are not supported)")
    theirs = {ours: body[name] for name, ours in NAMES.items() if name in body}
    if theirs.get("max_tokens") == -1:      # llama.cpp: -1 means "until it stops": the default here
        del theirs["max_tokens"]
    return prompt, generation_settings(theirs), body.get("stream") is True


@bp.post("/completion")
def completion():
    prompt, values, stream = completion_request()
    started = time.perf_counter()
    raw = services().turns.start_raw(prompt, values)
    model = services().turns.generator.path

    def final(text_so_far: str, first_piece_at: float | None) -> dict:
        usage = raw.usage()
        ended = time.perf_counter()
        predicted = usage["completion_tokens"]
        limit = predicted >= raw.params.max_tokens
        decode_s = ended - (first_piece_at or ended)
        return {"content": text_so_far, "stop": True, "model": model, "tokens_predicted": predicted,
                "tokens_evaluated": usage["prompt_tokens"], "stop_type": "limit" if limit else "eos",
                "timings": {"prompt_ms": round(((first_piece_at or ended) - started) * 1000, 2),
                            "predicted_ms": round(decode_s * 1000, 2),
                            "predicted_per_second": round(predicted / decode_s, 2) if decode_s > 0 else None}}

    if stream:
        def events() -> Generator[str, None, None]:
            first = None
            for piece in raw.pieces():
                first = first or time.perf_counter()
                yield f"data: {json.dumps({'content': piece, 'stop': False}, ensure_ascii=False)}\n\n"
            yield f"data: {json.dumps(final('', first), ensure_ascii=False)}\n\n"

        class Body:
            def __init__(self) -> None:
                self.events = events()

            def __iter__(self):
                return self.events

            def close(self) -> None:
                self.events.close()
                raw.close()

        return Response(Body(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    first_at = None
    pieces = []
    for piece in raw.pieces():
        first_at = first_at or time.perf_counter()
        pieces.append(piece)
    return jsonify(final("".join(pieces), first_at))


@bp.post("/tokenize")
def tokenize():
    body = json_object()
    content = body.get("content")
    if not isinstance(content, str):
        raise BadRequest("'content' must be a string")
    add_special = body.get("add_special") is True
    tokens = services().turns.tokenize(content, add_special)
    if body.get("with_pieces") is True:
        return jsonify({"tokens": [{"id": t, "piece": services().turns.detokenize([t])} for t in tokens]})
    return jsonify({"tokens": tokens})


@bp.post("/detokenize")
def detokenize():
    tokens = json_object().get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                               for t in tokens):
        raise BadRequest("'tokens' must be a list of token ids")
    return jsonify({"content": services().turns.detokenize(tokens)})
