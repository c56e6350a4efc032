"""The AI Companion HTTP API, exactly as documented (and as its 0.9.8 server answers).

Success bodies are the documented JSON or plain-text sentences; bad input answers a 4xx with
a plain-text reason and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from companion.api import schemas, services
from companion.api.sse import done_json, message_json, stream_response, used_json
from companion.api.validate import json_body, json_object, optional_json_object, parse, raw_body, uploaded_file, wants_stream
from companion.api.voice import speak_requested
from companion.characters.companions import AVATAR_PATH
from companion.chat.streams import Reply, TurnStream
from companion.formats.cards import normalize_card

bp = Blueprint("compat", __name__)


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
    asked = parse(schemas.PromptBody, body)
    speak = speak_requested(body, wants_stream(body))
    turn = services().turns.start_send(asked.chat_id or active_chat_id(), asked.prompt, schemas.generation_of(asked))
    return turn_response(turn, wants_stream(body), speak)


@bp.route("/api/regenerate_message", methods=["GET", "POST"])
def regenerate_message():
    body = optional_json_object()
    overrides = parse(schemas.Generation, body).given()
    speak = speak_requested(body, wants_stream(body))
    return turn_response(services().turns.start_regenerate(active_chat_id(), overrides), wants_stream(body), speak)


@bp.get("/api/messages")
def messages():
    return jsonify([{"id": m["id"], "ai": "true" if m["ai"] else "false", "text": m["text"],
                     "date": m["created_at"]} for m in services().messages.messages(active_chat_id())])


@bp.post("/api/editMessage")
def edit_message():
    body = json_body(schemas.EditMessageBody)
    services().messages.edit_message(body.id, body.new_text, chat_id=active_chat_id())
    return text("Removed message")


@bp.post("/api/removeMessage")
def remove_message():
    services().messages.remove_message(json_body(schemas.RemoveMessageBody).id, chat_id=active_chat_id())
    return text("Removed message")


@bp.get("/api/clearMessages")
def clear_messages():
    services().messages.clear(active_chat_id())
    return text("Chat log cleared")


@bp.post("/api/import/messagesJson")
def import_messages_json():
    messages = json_body(schemas.MessagesJsonBody).messages
    services().messages.import_messages(active_chat_id(), [(m.ai, m.text, m.date) for m in messages])
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


def changed(route: str) -> object:
    """The one value of a /api/change/<route> body, checked by its model."""
    return next(iter(json_body(schemas.CHANGES[route]).given().values()))


@bp.post("/api/change/firstMessage")
def change_first_message():
    return change_companion({"first_message": changed("firstMessage")}, "Changed first message")


@bp.post("/api/change/companionName")
def change_companion_name():
    return change_companion({"name": changed("companionName")}, "Changed companion name")


@bp.post("/api/change/companionPersona")
def change_companion_persona():
    return change_companion({"persona": changed("companionPersona")}, "Changed companion persona")


@bp.post("/api/change/companionExampleDialogue")
def change_companion_example_dialogue():
    return change_companion({"example_dialogue": changed("companionExampleDialogue")},
                            "Changed companion example dialogue")


@bp.post("/api/change/longTermMemory")
def change_long_term_memory():
    return change_companion({"long_term_mem": changed("longTermMemory")}, "Changed long term memory limit for ai")


@bp.post("/api/change/shortTermMemory")
def change_short_term_memory():
    return change_companion({"short_term_mem": changed("shortTermMemory")}, "Changed short term memory limit for ai")


@bp.post("/api/change/roleplay")
def change_roleplay():
    enable = changed("roleplay")
    return change_companion({"roleplay": int(enable)}, "Enabled roleplay" if enable else "Disabled roleplay")


@bp.post("/api/change/dialogue_tuning")
def change_dialogue_tuning():
    enable = changed("dialogue_tuning")
    return change_companion({"dialogue_tuning": int(enable)},
                            "Enabled dialogue tuning" if enable else "Disabled dialogue tuning")


@bp.post("/api/change/companionData")
def change_companion_data():
    fields = json_body(schemas.CompanionDataBody).given()
    fields.pop("id", None)
    fields["roleplay"] = int(fields["roleplay"])
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
    services().companions.update_user({"name": changed("userName")})
    return text("Changed user name")


@bp.post("/api/change/userPersona")
def change_user_persona():
    services().companions.update_user({"persona": changed("userPersona")})
    return text("Changed user persona")


@bp.post("/api/change/userData")
def change_user_data():
    body = json_body(schemas.UserDataBody)
    services().companions.update_user({"name": body.name, "persona": body.persona})
    return text("Data of user has been changed")


# character cards -----------------------------------------------------------------------------

@bp.post("/api/import/characterJson")
def import_character_json():
    body = json_object()
    if "spec" not in body:  # the documented flat form: check its four fields
        parse(schemas.CharacterJsonBody, body)
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
    services().memory.add(active_companion_id(), json_body(schemas.TextBody).text, "custom")
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
