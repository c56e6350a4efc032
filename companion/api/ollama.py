"""The Ollama API, the part chat frontends and home tools use: version, tags, show, ps,
generate, chat, embed and embeddings, pull and delete. Streams are newline-delimited JSON, on by
default as in Ollama; errors are {"error": "..."}. What a model name means is names.py's
business: the serving model, another listed model file (loaded first), companion/<id> (that
companion's own chat, as the /v1 companion mode does), memory/<id>[/<model>] or the
X-Companion-Memory header on /api/chat (the client's own messages with that companion's
long-term memory: TurnService.start_remembered); an unknown name is a 404, as in Ollama."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.openai import chat_messages, recalled_header
from companion.api.security import is_loopback
from companion.api.validate import generation_settings, json_object
from companion.errors import BadRequest, CompanionError, Forbidden, ModelUnavailable
from companion.names import MEMORY_HEADER, Named, ollama_tag

bp = Blueprint("ollama", __name__)
log = logging.getLogger(__name__)

OLLAMA_VERSION = "0.9.0"          # the API version these routes follow
NEVER = timedelta(microseconds=(2**63 - 1) // 1000)
COMPANION_PREFIX = "companion/"
# Ollama option -> our generation setting
OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
           "num_predict": "max_tokens", "stop": "stop", "seed": "seed", "repeat_penalty": "repeat_penalty"}


def now_text(later: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + later).isoformat().replace("+00:00", "Z")


def model_tag() -> str:
    """The serving model as Ollama names it: its file's stem, tag latest."""
    return services().names.serving_tag()


def named(body: dict) -> Named:
    """What the body's model name (and an X-Companion-Memory header) asks for; 404 for an unknown name."""
    return services().names.resolve(body.get("model") or body.get("name"), request.headers.get(MEMORY_HEADER))


def options_of(body: dict) -> tuple[dict, int | None]:
    """Our generation settings from Ollama's options, and num_ctx (a client's context limit)."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'options' must be an object")
    values = {ours: options[theirs] for theirs, ours in OPTIONS.items() if theirs in options}
    if values.get("max_tokens") in (-1, -2):        # Ollama: until it stops / fills the context
        del values["max_tokens"]
    num_ctx = options.get("num_ctx")
    if num_ctx is not None and (isinstance(num_ctx, bool) or not isinstance(num_ctx, int) or num_ctx < 1):
        raise BadRequest("'options.num_ctx' must be a positive integer")
    return generation_settings(values), num_ctx


def refuse_unsupported(body: dict) -> None:
    if body.get("context"):
        raise BadRequest("'context' (token context from an earlier reply) is not supported: send the messages instead")
    messages = body.get("messages")
    if body.get("images") or (isinstance(messages, list)          # a non-list is chat_messages' 400
                              and any(isinstance(m, dict) and m.get("images") for m in messages)):
        raise BadRequest("images are not supported: the model reads text only")


def ndjson(lines: Iterator[dict], on_close: Callable[[], None], headers: dict[str, str] | None = None) -> Response:
    class Body:
        def __iter__(self):
            for line in lines:
                yield json.dumps(line, ensure_ascii=False) + "\n"

        def close(self) -> None:
            lines.close()       # type: ignore[attr-defined]
            on_close()

    return Response(Body(), mimetype="application/x-ndjson", headers=headers)


class Timer:
    """Ollama's durations (nanoseconds) of one generation."""

    def __init__(self) -> None:
        self.started = time.perf_counter_ns()
        self.first: int | None = None

    def piece(self) -> None:
        self.first = self.first or time.perf_counter_ns()

    def final(self, usage: dict, max_tokens: int) -> dict:
        ended = time.perf_counter_ns()
        first = self.first or ended
        return {"done": True, "done_reason": "length" if usage["completion_tokens"] >= max_tokens else "stop",
                "total_duration": ended - self.started, "load_duration": 0,
                "prompt_eval_count": usage["prompt_tokens"], "prompt_eval_duration": first - self.started,
                "eval_count": usage["completion_tokens"], "eval_duration": ended - first}


def generation(body: dict, held, pieces: Iterator[str], shape: Callable[[str], dict],
               headers: dict[str, str] | None = None) -> Response:
    """Stream (the default) or answer whole: each piece shaped by shape(), then the final object."""
    model = body.get("model") or model_tag()
    timer = Timer()
    if body.get("stream", True) is not False:
        def lines() -> Iterator[dict]:
            for piece in pieces:
                timer.piece()
                yield {"model": model, "created_at": now_text(), **shape(piece), "done": False}
            yield {"model": model, "created_at": now_text(), **shape(""), **timer.final(held.usage(), held.params.max_tokens)}
        def close() -> None:      # the client went away: stop the generation (a companion keeps the partial reply)
            getattr(pieces, "close", lambda: None)()
            held.close()
        return ndjson(lines(), close, headers)
    text = []
    for piece in pieces:
        timer.piece()
        text.append(piece)
    response = jsonify({"model": model, "created_at": now_text(), **shape("".join(text)),
                        **timer.final(held.usage(), held.params.max_tokens)})
    response.headers.update(headers or {})
    return response


@bp.get("/api/version")
def version():
    return jsonify({"version": OLLAMA_VERSION})


def model_entry(name: str, size: int, details: dict) -> dict:
    return {"name": name, "model": name, "modified_at": now_text(), "size": size, "digest": "",
            "details": {"format": "gguf", "family": details.get("architecture") or "", "parameter_size": "",
                        "quantization_level": "", **({"description": details["description"]}
                                                     if "description" in details else {})}}


@bp.get("/api/tags")
def tags():
    """The serving model (by its file name), the other model files (named, they load), and one
    entry per companion."""
    names = services().names
    generator = services().turns.generator
    size = Path(generator.path).stat().st_size if generator.path and Path(generator.path).is_file() else 0
    models = [model_entry(model_tag(), size, {})]
    models += [model_entry(ollama_tag(path), path.stat().st_size, {}) for path in names.other_files()]
    rows, _ = services().companions.list(200, 0)
    models += [model_entry(f"{COMPANION_PREFIX}{row['id']}:latest", 0,
                           {"description": f"{row['name']}, with its memory"}) for row in rows]
    return jsonify({"models": models})


@bp.post("/api/show")
def show():
    """A model's facts: the file a name names (not loaded for this), else the serving model."""
    choice = named(json_object())
    described = services().models.describe(choice.path)
    defaults = services().settings.generation
    parameters = "\n".join(f"{k} {v}" for k, v in (("temperature", defaults.temperature), ("top_p", defaults.top_p),
                                                   ("top_k", defaults.top_k), ("num_ctx", services().turns.generator.n_ctx)))
    return jsonify({"modelfile": "", "parameters": parameters, "template": described.get("chat_template") or "",
                    "details": {"format": "gguf", "family": described.get("architecture") or ""},
                    "model_info": {"general.architecture": described.get("architecture"),
                                   "general.name": described.get("model_name"),
                                   "context_length": described.get("context_length")}})


@bp.get("/api/ps")
def ps():
    generator = services().turns.generator
    if generator.state != "ready":
        return jsonify({"models": []})
    size = Path(generator.path).stat().st_size if Path(generator.path).is_file() else 0
    # the model stays loaded: Ollama's "never" (keep_alive < 0) is now plus the longest duration, 2**63-1 ns
    return jsonify({"models": [{**model_entry(model_tag(), size, {}), "expires_at": now_text(NEVER), "size_vram": 0}]})


@bp.post("/api/generate")
def generate():
    body = json_object()
    refuse_unsupported(body)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRequest("'prompt' must be a string")
    values, num_ctx = options_of(body)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        raise BadRequest("'system' must be a string")
    choice = named(body)
    if choice.memory_id is not None:
        raise BadRequest(f"memory ({MEMORY_HEADER}, memory/<id>) works with chat messages: use /api/chat")
    services().names.use(choice)
    if not prompt:     # Ollama: an empty prompt loads the model and answers done
        if services().turns.generator.state != "ready":
            raise ModelUnavailable("the model is still loading", retry_after=5)
        return jsonify({"model": body.get("model") or model_tag(), "created_at": now_text(), "response": "",
                        "done": True, "done_reason": "load"})
    if body.get("raw") is True:
        held = services().turns.start_raw(prompt, values, num_ctx)
    else:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        held = services().turns.start_raw(overrides=values, context_size=num_ctx, messages=messages)
    return generation(body, held, held.pieces(), lambda piece: {"response": piece})


@bp.post("/api/chat")
def chat():
    body = json_object()
    refuse_unsupported(body)
    messages = chat_messages(body)
    values, num_ctx = options_of(body)
    choice = named(body)
    services().names.use(choice)
    companion_id = choice.companion_id

    def shape(piece: str) -> dict:
        return {"message": {"role": "assistant", "content": piece}}

    if companion_id is not None:
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not last_user.strip():
            raise BadRequest("the companion needs a user message with text")
        turn = services().turns.start_send(services().companions.active_chat_id(companion_id), last_user, values)
        tokens = (value for kind, value in turn.events() if kind == "token")
        return generation(body, turn, tokens, shape)  # type: ignore[arg-type]
    if choice.memory_id is not None:       # the client's prompt, with the companion's memories put in
        remembered = services().turns.start_remembered(choice.memory_id, messages, values, num_ctx)
        return generation(body, remembered, remembered.pieces(), shape, recalled_header(remembered))
    held = services().turns.start_raw(overrides=values, context_size=num_ctx, messages=messages)
    return generation(body, held, held.pieces(), shape)


def embedder_ready():
    embedder = services().embedder
    if embedder.state != "ready":
        raise ModelUnavailable(f"the embedding model is {embedder.state}", retry_after=5)
    return embedder


@bp.post("/api/embed")
def embed():
    body = json_object()
    texts: Any = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if (not isinstance(texts, list) or not texts or len(texts) > 256
            or not all(isinstance(t, str) and t for t in texts)):
        raise BadRequest("'input' must be a non-empty string or a list of up to 256 non-empty strings")
    services().names.check_embedder(body.get("model"))
    started = time.perf_counter_ns()
    embedder = embedder_ready()
    vectors = embedder.embed(texts)
    return jsonify({"model": body.get("model") or services().names.embedder_tag(), "embeddings": vectors,
                    "total_duration": time.perf_counter_ns() - started, "load_duration": 0,
                    "prompt_eval_count": sum(len(embedder.token_offsets(t)) for t in texts)})


@bp.post("/api/embeddings")
def embeddings():
    body = json_object()
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string")
    services().names.check_embedder(body.get("model"))
    return jsonify({"embedding": embedder_ready().embed([prompt])[0]})


def pulling_allowed() -> None:
    """[model] allow_pull, and from another machine only with the API key (checked before this)."""
    settings = services().settings
    if not settings.model.allow_pull:
        raise Forbidden("pulling and deleting models through the API is off ([model] allow_pull = false); "
                        "use `companion pull` on the daemon's machine")
    if not settings.server.api_key and not is_loopback(request.remote_addr or ""):
        raise Forbidden("pulling or deleting models from another machine needs [server] api_key")


def model_name(body: dict) -> str:
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'model' must name a model, e.g. hf.co/OWNER/REPO:Q4_K_M")
    return name


@bp.post("/api/pull")
def pull():
    """Download a GGUF into <data_dir>/models: NDJSON progress unless stream is false ('insecure' is ignored)."""
    pulling_allowed()
    body = json_object()
    models = services().models
    source = models.pull_source(model_name(body))        # an unknown repo or quant: an error status
    steps = models.pull(source)
    first = next(steps, None)     # the space check and the lock come first: a full disk is a 507, not a line
    if body.get("stream", True) is not False:
        def lines() -> Iterator[dict]:
            yield {"status": "pulling manifest"}
            try:
                if first is not None:
                    yield first
                yield from steps            # a client that goes away closes it: the .partial file stays
            except CompanionError as exc:
                log.warning("pulling %s failed: %s", source.label, exc.message)
                yield {"error": exc.message}
        return ndjson(lines(), steps.close)
    for _ in steps:
        pass
    return jsonify({"status": "success"})


@bp.delete("/api/delete")
def delete():
    """Delete a model file from <data_dir>/models (not the bundled one, not the one serving)."""
    pulling_allowed()
    services().models.delete(model_name(json_object()))
    return Response(status=200)
