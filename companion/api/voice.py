"""Voice over HTTP: OpenAI's /v1/audio/speech and /v1/audio/transcriptions (what SillyTavern's and
Open WebUI's OpenAI voice settings call), a stored reply spoken, and what the page needs to know."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.schemas import SpeechBody
from companion.api.validate import json_object, parse, uploaded_file
from companion.errors import BadRequest
from companion.voice.audio import MEDIA_TYPES
from companion.voice.service import SPEED

bp = Blueprint("voice", __name__)

TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")


def speed_field(value: object, where: str = "speed") -> float | None:
    """A speaking speed within [voice] speed's bounds (None: the default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"'{where}' must be a number")
    problem = SPEED.check(value, where)
    if problem:
        raise BadRequest(problem)
    return float(value)


def voice_field(value: object, where: str = "voice") -> str | None:
    """A voice name (None: the default); a name there is no voice for falls back to the default."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise BadRequest(f"'{where}' must be a voice name")
    return value


def speak_requested(body: dict, streaming: bool) -> bool:
    """Whether a reply's request asks for its sentences spoken as they stream ("speak": true);
    asked before the turn starts, so that a 400 or 501 changes nothing."""
    value = body.get("speak", False)
    if not isinstance(value, bool):
        raise BadRequest("'speak' must be true or false")
    if value and not streaming:
        raise BadRequest("'speak' needs a streamed reply (\"stream\": true)")
    if value and not services().voice.speaker.available:
        raise services().voice.speaker.missing()
    return value


def audio_response(data: bytes, fmt: str) -> Response:
    return Response(data, mimetype=MEDIA_TYPES[fmt], headers={"Cache-Control": "no-store"})


@bp.get("/api/voice")
def voice_status():
    """Which voice parts are installed, the voices, and the limits (the page hides what is missing)."""
    return jsonify(services().voice.status())


@bp.post("/v1/audio/speech")
def speech():
    body = json_object()
    text = parse(SpeechBody, body).input
    most = services().settings.voice.max_text_chars
    if len(text) > most:
        raise BadRequest(f"'input' is too long (at most {most} characters)")
    fmt = body.get("response_format") or "mp3"
    if fmt not in MEDIA_TYPES:
        raise BadRequest(f"'response_format' must be one of {', '.join(MEDIA_TYPES)}")
    data = services().voice.speak(text, voice_field(body.get("voice")), speed_field(body.get("speed")), fmt)
    return audio_response(data, fmt)


@bp.post("/v1/audio/transcriptions")
def transcriptions():
    data, fields, _ = uploaded_file("audio")
    fmt = fields.get("response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        raise BadRequest(f"'response_format' must be one of {', '.join(TRANSCRIPT_FORMATS)}")
    heard = services().voice.transcribe(data, fields.get("language") or None)
    if fmt == "text":
        return Response(heard.text + "\n", mimetype="text/plain")
    if fmt == "verbose_json":
        return jsonify({"task": "transcribe", "language": heard.language, "duration": round(heard.seconds, 3),
                        "text": heard.text})
    return jsonify({"text": heard.text})


@bp.get("/api/messages/<int:message_id>/speech")
def message_speech(message_id: int):
    """A stored message spoken in its companion's voice (cached on disk by text, voice and speed)."""
    fmt = request.args.get("format", "mp3")
    return audio_response(services().voice.message_speech(message_id, fmt), fmt)
