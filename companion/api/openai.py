"""An OpenAI-compatible API under /v1: models, chat completions, completions, embeddings.

Chat completions work two ways: as a plain model (the messages go to the model as given, as
SillyTavern's Chat Completion "Custom (OpenAI-compatible)" source sends them), or as the
companion (model "companion" or "companion:<id>": the last user message becomes a turn with the
companion's persona, memory, lore and history, stored like /api/prompt). A third way keeps the
client's own prompt and adds only memory: model "memory/<id>[/<model>]" or the
X-Companion-Memory header (TurnService.start_remembered). Model names are resolved in
names.py: another listed model file loads, an unknown name is a 404 (model_not_found).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Iterator

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.validate import GENERATION_LIMITS, generation_settings, json_object
from companion.chat.streams import RawStream, RememberedStream, TurnStream
from companion.errors import BadRequest, CompanionError, ModelUnavailable
from companion.names import MEMORY_HEADER, RECALLED_HEADER, Named

bp = Blueprint("openai", __name__)

COMPANION_MODEL = "companion"
PENALTIES = ("presence_penalty", "frequency_penalty")
ROLES = ("system", "user", "assistant", "developer", "tool")


def model_name() -> str:
    return services().names.serving_id()


def named(body: dict) -> Named:
    """What the body's model name (and an X-Companion-Memory header) asks for; 404 for an unknown name."""
    return services().names.resolve(body.get("model"), request.headers.get(MEMORY_HEADER))


def overrides(body: dict) -> dict:
    """OpenAI sampling parameters as generation overrides, checked."""
    values = generation_settings({k: body[k] for k in (*GENERATION_LIMITS, "stop") if k in body})
    if "max_completion_tokens" in body and "max_tokens" not in body:
        values.update(generation_settings({"max_tokens": body["max_completion_tokens"]}))
    for key in PENALTIES:
        if body.get(key) is not None:
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -2 <= value <= 2:
                raise BadRequest(f"'{key}' must be a number between -2 and 2")
            values[key] = float(value)
    return values


def message_text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    if content is None:
        return ""
    raise BadRequest(f"{where}.content must be a string or a list of content parts")


def chat_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    out = []
    for n, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest(f"messages[{n}] needs a role: one of {', '.join(ROLES)}")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": message_text(m.get("content"), f"messages[{n}]")})
    return out


def recalled_header(held: RememberedStream) -> dict[str, str]:
    """X-Companion-Memories: the ids of the memories put into the prompt, best first (empty: none)."""
    return {RECALLED_HEADER: ",".join(str(m.id) for m in held.memories)}


def sse(chunks: Iterator[dict], on_close: Callable[[], None], headers: dict[str, str] | None = None) -> Response:
    """OpenAI's stream: `data: {json}` lines, then `data: [DONE]`."""
    class Body:
        def __iter__(self):
            try:
                for chunk in chunks:
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
            except CompanionError as exc:
                yield f"data: {json.dumps({'error': {'message': exc.message, 'type': exc.code}})}\n\n"

        def close(self):
            chunks.close()
            on_close()

    return Response(Body(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache", **(headers or {})})


def finish_reason(completion_tokens: int, max_tokens: int) -> str:
    return "length" if completion_tokens >= max_tokens else "stop"


@bp.get("/v1/models")
def models():
    created = int(time.time())
    data = [{"id": model_name(), "object": "model", "created": created, "owned_by": "companion"}]
    data += [{"id": path.name, "object": "model", "created": created, "owned_by": "companion"}
             for path in services().names.other_files()]
    data.append({"id": COMPANION_MODEL, "object": "model", "created": created, "owned_by": "companion"})
    rows, _ = services().companions.list(200, 0)
    data += [{"id": f"{COMPANION_MODEL}:{r['id']}", "object": "model", "created": created,
              "owned_by": "companion", "name": r["name"]} for r in rows]
    return jsonify({"object": "list", "data": data})


@bp.post("/v1/chat/completions")
def chat_completions():
    body = json_object()
    messages = chat_messages(body)
    params = overrides(body)
    choice = named(body)
    services().names.use(choice)
    model = choice.name or model_name()
    companion_id = choice.companion_id
    stream = body.get("stream") is True
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    headers: dict[str, str] = {}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    if companion_id is not None:
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not last_user.strip():
            raise BadRequest("the companion needs a user message with text")
        turn: TurnStream = services().turns.start_send(
            services().companions.active_chat_id(companion_id), last_user, params)
        if stream:
            def turn_chunks() -> Iterator[dict]:
                yield chunk({"role": "assistant"})
                for kind, value in turn.events():
                    if kind == "token":
                        yield chunk({"content": value})
                    else:
                        yield chunk({}, "stop")
            return sse(turn_chunks(), turn.close)
        text = turn.run().message["text"]
        usage = turn.usage()
        finish = finish_reason(usage["completion_tokens"], turn.params.max_tokens)
    else:
        raw: RawStream
        if choice.memory_id is not None:     # the client's prompt, with the companion's memories put in
            remembered = services().turns.start_remembered(choice.memory_id, messages, params)
            headers = recalled_header(remembered)
            raw = remembered
        else:
            raw = services().turns.start_raw(overrides=params, messages=messages)
        if stream:
            def raw_chunks() -> Iterator[dict]:
                yield chunk({"role": "assistant"})
                for piece in raw.pieces():
                    yield chunk({"content": piece})
                usage = raw.usage()
                yield chunk({}, finish_reason(usage["completion_tokens"], raw.params.max_tokens))
            return sse(raw_chunks(), raw.close, headers)
        text = "".join(raw.pieces())
        usage = raw.usage()
        finish = finish_reason(usage["completion_tokens"], raw.params.max_tokens)
    response = jsonify({
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": usage,
    })
    response.headers.update(headers)
    return response


@bp.post("/v1/completions")
def completions():
    body = json_object()
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise BadRequest("'suffix' must be a string")
    params = overrides(body)
    choice = named(body)
    if choice.memory_id is not None:
        raise BadRequest(f"memory ({MEMORY_HEADER}, memory/<id>) works with chat messages: use /v1/chat/completions")
    services().names.use(choice)
    model = choice.name or model_name()
    raw = services().turns.start_raw(prompt, params, suffix=suffix or None)
    completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def choice(text: str, finish: str | None) -> dict:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    if body.get("stream") is True:
        def raw_chunks() -> Iterator[dict]:
            for piece in raw.pieces():
                yield {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                       "choices": [choice(piece, None)]}
            usage = raw.usage()
            yield {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                   "choices": [choice("", finish_reason(usage["completion_tokens"], raw.params.max_tokens))]}
        return sse(raw_chunks(), raw.close)
    text = "".join(raw.pieces())
    usage = raw.usage()
    return jsonify({"id": completion_id, "object": "text_completion", "created": created, "model": model,
                    "choices": [choice(text, finish_reason(usage["completion_tokens"], raw.params.max_tokens))],
                    "usage": usage})


@bp.post("/v1/embeddings")
def embeddings():
    body = json_object()
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if (not isinstance(texts, list) or not texts or len(texts) > 256
            or not all(isinstance(t, str) and t for t in texts)):
        raise BadRequest("'input' must be a non-empty string or a list of up to 256 non-empty strings")
    embedder = services().embedder
    if embedder.state != "ready":
        raise ModelUnavailable(f"the embedding model is {embedder.state}", retry_after=5)
    vectors = embedder.embed(texts)
    tokens = sum(len(embedder.token_offsets(t)) for t in texts)
    return jsonify({"object": "list", "model": embedder.name,
                    "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
