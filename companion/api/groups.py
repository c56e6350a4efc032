"""REST for group chats: groups (CRUD, activate, avatar collage), their chats, and group turns
(the user writes, then members reply one after another, streamed as SSE when asked)."""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, Response, jsonify

from companion.api import services
from companion.api.chats import message_rest
from companion.api.companions import created, page
from companion.api.schemas import Body, GroupReplyBody, GroupTurnBody, TitleBody, generation_of
from companion.api.sse import TurnEvents, event, used_json
from companion.api.validate import json_object, optional_json_object, parse, uploaded_file, wants_stream
from companion.api.voice import speak_requested
from companion.chat.streams import GroupStream, Reply
from companion.errors import CompanionError
from companion.formats.images import collage_png
from companion.voice.narration import Narration
from companion.voice.service import VoiceService

bp = Blueprint("groups", __name__)

def group_json(group: dict) -> dict:
    """A group as the REST API shows it: its members in order with their names, its strategy."""
    names = services().groups.member_names(group)
    return {
        "id": group["id"], "name": group["name"], "strategy": group["strategy"], "preset_id": group["preset_id"],
        "members": [{**m, "name": names[m["companion_id"]], "avatar_url": f"/api/companions/{m['companion_id']}/avatar"}
                    for m in group["members"]],
        "avatar_url": f"/api/groups/{group['id']}/avatar", "active_chat_id": group["active_chat_id"],
        "active": services().groups.active_group_id() == group["id"],
        "created_at": group["created_at"], "updated_at": group["updated_at"],
    }


def reply_json(reply: Reply) -> dict:
    """One member's stored reply and what it used."""
    return {"message": message_rest(reply.message), **used_json(reply)}  # type: ignore[arg-type]


@bp.get("/api/groups")
def list_groups():
    rows, total = services().groups.list(*page())
    return jsonify({"items": [group_json(g) for g in rows], "total": total})


@bp.post("/api/groups")
def create_group():
    """A group of two or more companions ({name, members, strategy}), with its first chat."""
    return created(group_json(services().groups.create(json_object())))


@bp.get("/api/groups/<int:group_id>")
def get_group(group_id: int):
    return jsonify(group_json(services().groups.get(group_id)))


@bp.patch("/api/groups/<int:group_id>")
def change_group(group_id: int):
    return jsonify(group_json(services().groups.update(group_id, json_object())))


@bp.delete("/api/groups/<int:group_id>")
def delete_group(group_id: int):
    services().memory.unindex(services().groups.delete(group_id))
    return Response(status=204)


@bp.post("/api/groups/<int:group_id>/activate")
def activate_group(group_id: int):
    return jsonify(group_json(services().groups.activate(group_id)))


@bp.get("/api/groups/<int:group_id>/avatar")
def group_avatar(group_id: int):
    """A collage of the first four members' avatars (PNG)."""
    group = services().groups.get(group_id)
    pictures = [services().companions.avatar_png(m["companion_id"], thumb=True) for m in group["members"][:4]]
    return Response(collage_png(pictures), mimetype="image/png", headers={"Cache-Control": "no-cache"})


# chats ----------------------------------------------------------------------------------------

@bp.get("/api/groups/<int:group_id>/chats")
def group_chats(group_id: int):
    rows, total = services().groups.chats(group_id, *page())
    return jsonify({"items": [services().chats.describe(r) for r in rows], "total": total})


@bp.post("/api/groups/<int:group_id>/chats")
def new_group_chat(group_id: int):
    title = parse(TitleBody, optional_json_object()).title or ""
    chat_id = services().groups.new_chat(group_id, title)
    return created(services().chats.activate(chat_id))


@bp.post("/api/groups/<int:group_id>/chats/import")
def import_group_chat(group_id: int):
    """A SillyTavern group chat (.jsonl, each message named) into a new chat of the group."""
    data, _, _ = uploaded_file("chat")
    return created(services().chats.import_group_file(data, services().groups.get(group_id)))


# turns ----------------------------------------------------------------------------------------

class GroupEventStream(TurnEvents):
    """SSE of a group turn: message (the user's), then speaker, token... and reply for each
    member, then done; closing it mid-way (a client gone) stops the turn, partial reply kept.
    With speak, each member's sentences are spoken in its own voice (audio events before its reply)."""

    def __init__(self, turn: GroupStream, voice: VoiceService | None = None) -> None:
        self.turn = turn
        self.voice = voice      # speaking each member's reply (it runs outside the request's context)
        self.narration: Narration | None = None
        self._events = turn.events()

    def __iter__(self) -> Iterator[str]:
        if self.turn.user_message is not None:
            yield event("message", {"message": message_rest(self.turn.user_message)})
        speaker: dict = {}
        try:
            for kind, value in self._events:
                if kind == "speaker":
                    speaker = {"companion_id": value["id"], "name": value["name"]}  # type: ignore[index]
                    if self.voice:
                        self.narration = self.voice.narration(speaker["companion_id"])
                    yield event("speaker", speaker)
                elif kind == "token":
                    yield event("token", {"text": value, **speaker})
                    if self.narration:
                        yield from (event("audio", {**a, **speaker}) for a in self.narration.spoken(str(value)))
                elif kind == "reply":
                    if self.narration:
                        yield from (event("audio", {**a, **speaker}) for a in self.narration.ending())
                        self.narration = None
                    yield event("reply", reply_json(value))  # type: ignore[arg-type]
                else:
                    yield event("done", {"replies": [reply_json(r) for r in value]})  # type: ignore[attr-defined]
        except CompanionError as exc:
            yield event("error", {"message": exc.message, "code": exc.code})


def group_turn(group_id: int, text: str | None, asked: int | None, body: dict, checked: Body) -> Response:
    svc = services()
    chat_id = svc.groups.chat_of(group_id, checked.chat_id)  # type: ignore[attr-defined]
    overrides = generation_of(checked)
    speak = speak_requested(body, wants_stream(body))
    turn = svc.turns.start_group(chat_id, text, svc.groups.speakers(group_id, chat_id, asked, text), overrides)
    if wants_stream(body):
        return Response(GroupEventStream(turn, svc.voice if speak else None), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    replies = turn.run()
    return jsonify({"chat_id": chat_id,
                    "message": message_rest(turn.user_message) if turn.user_message else None,
                    "replies": [reply_json(r) for r in replies]})


@bp.post("/api/groups/<int:group_id>/turn")
def turn(group_id: int):
    """The user writes ({"text"}, or nothing to let the group go on), then the members the
    group's strategy picks reply one after another."""
    body = json_object()
    checked = parse(GroupTurnBody, body)
    return group_turn(group_id, checked.text, None, body, checked)  # type: ignore[attr-defined]


@bp.post("/api/groups/<int:group_id>/reply")
def reply(group_id: int):
    """One member speaks now ({"companion_id"}): the "let X speak" of the page."""
    body = json_object()
    checked = parse(GroupReplyBody, body)
    return group_turn(group_id, None, checked.companion_id, body, checked)  # type: ignore[attr-defined]

