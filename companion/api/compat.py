"""The AI Companion HTTP API, exactly as documented (and as its 0.9.8 server answers).

Success bodies are the documented JSON or plain-text sentences; bad input answers a 4xx with
a plain-text reason and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..cards import normalize_card
from ..streams import Reply, TurnStream
from ..errors import BadRequest
from ..companions import AVATAR_PATH
from . import services
from .sse import done_json, message_json, stream_response, used_json
from .voice import speak_requested
from .validate import (bool_field, date_field, generation_settings, int_field, json_object, memory_limit, name_field,
                       optional_json_object, raw_body, text_field, uploaded_file, wants_stream)

bp = Blueprint("compat", __name__)

MAX_IMPORT_MESSAGES = 100_000


def active_chat_id() -> int:
    """The chat this dialect talks in: the active companion's active chat."""
    return services().companions.active_chat_id()


def active_companion_id() -> int:
    """The companion this dialect acts on."""
    return services().companions.active_companion_id()


def text(sentence: str) -> Response:
    """A documented plain-text success body."""
    return Response(sentence, mimetype="text/plain")


def reply_body(reply: Reply) -> dict:
    """The documented {id, ai, text, date}, plus what was recalled for the reply."""
    return {**message_json(reply), **used_json(reply)}


def turn_response(turn: TurnStream, stream: bool, speak: bool = False) -> Response:
    """Stream the turn as SSE (spoken too, with speak), or generate it whole and answer the JSON reply."""
    if stream:
        return stream_response(turn, done_json, speak)
    return jsonify(reply_body(turn.run()))


# messages ------------------------------------------------------------------------------------

@bp.post("/api/prompt")
def prompt():
    body = json_object()
    prompt_text = text_field(body, "prompt", allow_empty=False)
    overrides = generation_settings(body)
    chat_id = int_field(body, "chat_id", minimum=1, maximum=2**62) if body.get("chat_id") is not None else None
    speak = speak_requested(body, wants_stream(body))
    turn = services().turns.start_send(chat_id or active_chat_id(), prompt_text, overrides)
    return turn_response(turn, wants_stream(body), speak)


@bp.route("/api/regenerate_message", methods=["GET", "POST"])
def regenerate_message():
    body = optional_json_object()
    overrides = generation_settings(body)
    speak = speak_requested(body, wants_stream(body))
    return turn_response(services().turns.start_regenerate(active_chat_id(), overrides), wants_stream(body), speak)


@bp.get("/api/messages")
def messages():
    return jsonify([{"id": m["id"], "ai": "true" if m["ai"] else "false", "text": m["text"],
                     "date": m["created_at"]} for m in services().messages.messages(active_chat_id())])


@bp.post("/api/editMessage")
def edit_message():
    body = json_object()
    new_text = text_field(body, "new_text", allow_empty=False)
    services().messages.edit_message(int_field(body, "id", maximum=2**62), new_text, chat_id=active_chat_id())
    return text("Removed message")


@bp.post("/api/removeMessage")
def remove_message():
    body = json_object()
    services().messages.remove_message(int_field(body, "id", maximum=2**62), chat_id=active_chat_id())
    return text("Removed message")


@bp.get("/api/clearMessages")
def clear_messages():
    services().messages.clear(active_chat_id())
    return text("Chat log cleared")


@bp.post("/api/import/messagesJson")
def import_messages_json():
    body = json_object()
    items = body.get("messages")
    if not isinstance(items, list):
        raise BadRequest("'messages' is required and must be a list of {ai, text}")
    if len(items) > MAX_IMPORT_MESSAGES:
        raise BadRequest(f"too many messages (at most {MAX_IMPORT_MESSAGES})")
    parsed = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"messages[{n}] must be an object with 'ai' and 'text'")
        try:
            parsed.append((bool_field(item, "ai"), text_field(item, "text", allow_empty=False),
                           date_field(item, "date")))
        except BadRequest as exc:
            raise BadRequest(f"messages[{n}]: {exc.message}") from None
    services().messages.import_messages(active_chat_id(), parsed)
    return text("Imported messages to your ai companion memory")


@bp.get("/api/messagesJson")
def messages_json():
    return jsonify({"messages": services().messages.export_messages(active_chat_id())})


# companion and user --------------------------------------------------------------------------

@bp.get("/api/companionData")
def companion_data():
    c = services().companions.companion()
    return jsonify({
        "id": c["id"], "name": c["name"], "persona": c["persona"],
        "example_dialogue": c["example_dialogue"], "first_message": c["first_message"],
        "long_term_mem": c["long_term_mem"], "short_term_mem": c["short_term_mem"],
        "roleplay": int(c["roleplay"]), "dialogue_tuning": int(c["dialogue_tuning"]),
        "avatar_path": AVATAR_PATH,
    })


@bp.get("/api/userData")
def user_data():
    u = services().companions.user()
    return jsonify({"id": u["id"], "name": u["name"], "persona": u["persona"]})


def change_companion(fields: dict, sentence: str) -> Response:
    services().companions.update_companion(fields)
    return text(sentence)


@bp.post("/api/change/firstMessage")
def change_first_message():
    body = json_object()
    return change_companion({"first_message": text_field(body, "first_message")}, "Changed first message")


@bp.post("/api/change/companionName")
def change_companion_name():
    body = json_object()
    return change_companion({"name": name_field(body, "companion_name")}, "Changed companion name")


@bp.post("/api/change/companionPersona")
def change_companion_persona():
    body = json_object()
    return change_companion({"persona": text_field(body, "companion_persona")}, "Changed companion persona")


@bp.post("/api/change/companionExampleDialogue")
def change_companion_example_dialogue():
    body = json_object()
    return change_companion({"example_dialogue": text_field(body, "example_dialogue")},
                            "Changed companion example dialogue")


@bp.post("/api/change/longTermMemory")
def change_long_term_memory():
    body = json_object()
    return change_companion({"long_term_mem": memory_limit(body, "limit", "long_term_mem")},
                            "Changed long term memory limit for ai")


@bp.post("/api/change/shortTermMemory")
def change_short_term_memory():
    body = json_object()
    return change_companion({"short_term_mem": memory_limit(body, "limit", "short_term_mem")},
                            "Changed short term memory limit for ai")


@bp.post("/api/change/roleplay")
def change_roleplay():
    enable = bool_field(json_object(), "enable")
    return change_companion({"roleplay": int(enable)}, "Enabled roleplay" if enable else "Disabled roleplay")


@bp.post("/api/change/dialogue_tuning")
def change_dialogue_tuning():
    enable = bool_field(json_object(), "enable")
    return change_companion({"dialogue_tuning": int(enable)},
                            "Enabled dialogue tuning" if enable else "Disabled dialogue tuning")


@bp.post("/api/change/companionData")
def change_companion_data():
    body = json_object()
    fields = {
        "name": name_field(body, "name"),
        "persona": text_field(body, "persona"),
        "example_dialogue": text_field(body, "example_dialogue"),
        "first_message": text_field(body, "first_message"),
        "long_term_mem": memory_limit(body, "long_term_mem"),
        "short_term_mem": memory_limit(body, "short_term_mem"),
        "roleplay": int(bool_field(body, "roleplay")),
    }
    return change_companion(fields, "Data of your AI companion has been changed")


@bp.post("/api/change/companionAvatar")
def change_companion_avatar():
    services().companions.set_avatar(raw_body())
    return text("Changed avatar of your ai companion")


@bp.get(AVATAR_PATH)
def avatar():
    return Response(services().companions.avatar_png(), mimetype="image/png",
                    headers={"Cache-Control": "no-cache"})


@bp.post("/api/change/userName")
def change_user_name():
    services().companions.update_user({"name": name_field(json_object(), "user_name")})
    return text("Changed user name")


@bp.post("/api/change/userPersona")
def change_user_persona():
    services().companions.update_user({"persona": text_field(json_object(), "user_persona")})
    return text("Changed user persona")


@bp.post("/api/change/userData")
def change_user_data():
    body = json_object()
    services().companions.update_user({"name": name_field(body, "name"),
                                       "persona": text_field(body, "persona")})
    return text("Data of user has been changed")


# character cards -----------------------------------------------------------------------------

@bp.post("/api/import/characterJson")
def import_character_json():
    body = json_object()
    if "spec" not in body:  # the documented flat form: check its four fields
        name_field(body, "name")
        for key in ("description", "first_mes", "mes_example"):
            text_field(body, key)
    card = normalize_card(body)
    services().companions.import_character_json(card)
    return text("Data of your ai companion has been changed")


@bp.post("/api/import/characterCard")
def import_character_card():
    services().companions.import_card(uploaded_file("card")[0])
    return text("Data of your ai companion has been changed")


@bp.get("/api/characterJson")
def character_json():
    return jsonify(services().companions.character_json())


# long-term memory and dialogue tuning --------------------------------------------------------

@bp.post("/api/addData")
def add_data():
    services().memory.add(active_companion_id(), text_field(json_object(), "text", allow_empty=False), "custom")
    return text("Added custom data to AI long term memory")


@bp.get("/api/erase/longTermMemory")
def erase_long_term_memory():
    services().memory.erase(active_companion_id())
    return text("Erased AI's long term memory")


@bp.post("/api/saveTunedDialogue")
def save_tuned_dialogue():
    services().messages.save_tuned_dialogue(active_chat_id())
    return text("Saved messages as tuned dialogue")


@bp.get("/api/clearTuningMessages")
def clear_tuning_messages():
    services().messages.clear_tuned_dialogue(active_companion_id())
    return text("Tuning dialogue messages erased")
