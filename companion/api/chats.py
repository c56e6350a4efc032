"""REST for chats: several per companion, their messages and swipes, export, import, search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.companions import created, page
from companion.api.schemas import ChatChange, ChatNew, Ids, SwipeChoice, TextBody
from companion.api.sse import done_json, stream_response
from companion.api.validate import generation_settings, json_body, optional_json_object, parse, uploaded_file, wants_stream
from companion.api.voice import speak_requested
from companion.errors import BadRequest
from companion.formats.chat_files import FORMATS, MEDIA_TYPES

if TYPE_CHECKING:   # a row's type only: handlers do not use the store
    from companion.store.rows import MessageRow
bp = Blueprint("chats", __name__)


def message_rest(row: MessageRow) -> dict:
    return {"id": row["id"], "chat_id": row["chat_id"], "ai": row["ai"], "text": row["text"],
            "swipes": row["swipes"] or [row["text"]], "swipe_id": row["swipe_id"], "greeting": row["greeting"],
            "date": row["created_at"], "companion_id": row["companion_id"], "user_id": row["user_id"],
            "initiated": row["initiated"]}


def optional_id(source: dict, key: str) -> int | None:
    """An id from a body or query string (None when absent or empty)."""
    if source.get(key) in (None, ""):
        return None
    return getattr(parse(Ids, {key: source[key]}), key)


@bp.get("/api/chats")
def list_chats():
    companion_id = optional_id(request.args.to_dict(), "companion_id")
    items, total = services().chats.list(companion_id, *page())
    return jsonify({"items": items, "total": total})


@bp.post("/api/chats")
def create_chat():
    """A new chat for a companion (the active one by default), opening with the chosen greeting."""
    body = json_body(ChatNew)
    companion_id = body.companion_id or services().companions.active_companion_id()
    chat = services().chats.create(companion_id, body.title or "", body.greeting_index or 0)
    rows, _ = services().chats.messages(chat["id"], 200, 0)
    return created({**services().chats.describe(chat), "messages": [message_rest(r) for r in rows]})


@bp.post("/api/chats/import")
def import_chat():
    """A SillyTavern .jsonl chat (or our JSON export) into a new chat: raw body or multipart 'file'."""
    data, source, _ = uploaded_file("chat")
    companion_id = optional_id(source, "companion_id") or services().companions.active_companion_id()
    return created(services().chats.import_file(data, companion_id))


@bp.get("/api/chats/<int:chat_id>")
def get_chat(chat_id: int):
    return jsonify(services().chats.describe(services().chats.get(chat_id)))


@bp.patch("/api/chats/<int:chat_id>")
def change_chat(chat_id: int):
    """Rename a chat ({"title"}) and/or turn its "story so far" on or off ({"story_so_far"})."""
    body = json_body(ChatChange)
    if not {"title", "story_so_far"} & body.model_fields_set:
        raise BadRequest("give 'title' and/or 'story_so_far'")
    return jsonify(services().chats.change(chat_id, body.title, body.story_so_far))


@bp.delete("/api/chats/<int:chat_id>")
def delete_chat(chat_id: int):
    services().chats.delete(chat_id)
    return Response(status=204)


@bp.post("/api/chats/<int:chat_id>/activate")
def activate_chat(chat_id: int):
    return jsonify(services().chats.activate(chat_id))


@bp.get("/api/chats/<int:chat_id>/messages")
def chat_messages(chat_id: int):
    rows, total = services().chats.messages(chat_id, *page())
    return jsonify({"items": [message_rest(r) for r in rows], "total": total})


@bp.get("/api/chats/<int:chat_id>/export")
def export_chat(chat_id: int):
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
    body = services().chats.export(chat_id, fmt)
    return Response(body, mimetype=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="chat-{chat_id}.{fmt}"'})


# messages and swipes -------------------------------------------------------------------------

@bp.patch("/api/messages/<int:message_id>")
def edit_message(message_id: int):
    services().messages.edit_message(message_id, json_body(TextBody).text)
    return jsonify(message_rest(services().messages.get(message_id)))


@bp.delete("/api/messages/<int:message_id>")
def delete_message(message_id: int):
    services().messages.remove_message(message_id)
    return Response(status=204)


@bp.post("/api/messages/<int:message_id>/swipes")
def new_swipe(message_id: int):
    """Generate one more alternative of a chat's last reply (streams like a prompt)."""
    body = optional_json_object()
    chat_id = services().messages.get(message_id)["chat_id"]
    speak = speak_requested(body, wants_stream(body))
    turn = services().turns.start_regenerate(chat_id, generation_settings(body), message_id)
    if wants_stream(body):
        return stream_response(turn, done_json, speak)
    turn.run()
    return created(message_rest(services().messages.get(message_id)))


@bp.put("/api/messages/<int:message_id>/swipe")
def choose_swipe(message_id: int):
    index = json_body(SwipeChoice).index
    return jsonify(message_rest(services().messages.choose_swipe(message_id, index)))


# search --------------------------------------------------------------------------------------

@bp.get("/api/search")
def search():
    args = request.args.to_dict()
    query = args.get("q", "")
    if not query.strip():
        raise BadRequest("q is required")
    items, total = services().chats.search(query, optional_id(args, "companion_id"), optional_id(args, "chat_id"),
                                           *page())
    return jsonify({"items": items, "total": total})
