"""REST for companions and user personas: list, create, read, change, delete, activate; cards in and out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.schemas import CompanionSettings, Named, PageQuery, PersonaBody, PersonaNew
from companion.api.validate import json_object, parse, uploaded_file
from companion.api.voice import speed_field, voice_field
from companion.characters.companions import card_of
from companion.config import COMPANION_SORTS, MAX_FILTER_TAGS, MAX_SEARCH_LENGTH, MAX_TAG_LENGTH, initiative_problem
from companion.errors import BadRequest
from companion.formats.cards import CARD_FIELDS, normalize_card

if TYPE_CHECKING:   # a row's type only: handlers do not use the store
    from companion.store.rows import CompanionRow

bp = Blueprint("companions", __name__)

EDITABLE_CARD_FIELDS = tuple(f for f in CARD_FIELDS if f != "character_book")


def page() -> tuple[int, int]:
    """limit (1..200, default 50) and offset (0 or more) from the query string."""
    asked = parse(PageQuery, {k: request.args[k] for k in ("limit", "offset") if k in request.args})
    return (50 if asked.limit is None else asked.limit), (asked.offset or 0)


def companion_json(row: CompanionRow) -> dict:
    """A companion as the REST API shows it: its card fields, settings and state."""
    card = card_of(row)
    active = services().companions.active_companion_id()
    return {
        "id": row["id"],
        **{k: card[k] for k in CARD_FIELDS},
        "long_term_mem": row["long_term_mem"], "short_term_mem": row["short_term_mem"],
        "roleplay": row["roleplay"], "dialogue_tuning": row["dialogue_tuning"],
        "generation": row["generation"], "preset_id": row["preset_id"], "active": row["id"] == active,
        "initiative": services().initiative.settings_of(row),
        "voice": services().voice.voice_of(row["id"]),
        "lorebook_ids": services().lorebooks.of_companion(row["id"]),
        "avatar_url": f"/api/companions/{row['id']}/avatar",
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def split_companion_body(body: dict, creating: bool) -> tuple[dict, dict]:
    """Card fields and settings from a request body, each checked; unknown keys are a 400."""
    allowed = set(EDITABLE_CARD_FIELDS) | {"long_term_mem", "short_term_mem", "roleplay", "dialogue_tuning",
                                           "initiative", "preset_id", "voice"}
    unknown = set(body) - allowed - {"id"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    if creating or "name" in body:
        parse(Named, {"name": body.get("name")})
    card = {k: v for k, v in body.items() if k in EDITABLE_CARD_FIELDS}
    # the card rules check every field's type (a CardError is a 400)
    normalize_card({"spec": "chara_card_v3", "data": {"name": body.get("name", "x"), **card}})
    checked = parse(CompanionSettings, {k: body[k] for k in NUMBERS if k in body})
    settings: dict = {k: int(v) if isinstance(v, bool) else v for k, v in checked.given().items()}
    if "initiative" in body:
        settings["initiative"] = initiative_field(body["initiative"])
    if "voice" in body:
        settings["voice"] = companion_voice_field(body["voice"])
    if "preset_id" in body:
        settings["preset_id"] = parse(CompanionSettings, {"preset_id": body["preset_id"]}).preset_id
    return card, settings


NUMBERS = ("long_term_mem", "short_term_mem", "roleplay", "dialogue_tuning")   # checked first, in this order


def initiative_field(value: object) -> dict:
    """A companion's writing-first settings (null for a setting: back to [initiative]'s)."""
    if not isinstance(value, dict):
        raise BadRequest("'initiative' must be an object, e.g. {\"enabled\": true, \"hours\": \"9-21\"}")
    problem = initiative_problem({k: v for k, v in value.items() if v is not None})
    if problem:
        raise BadRequest(problem)
    return value


def companion_voice_field(value: object) -> dict:
    """A companion's voice ({"voice", "speed"}; null for one: back to [voice]'s), kept in its card."""
    if not isinstance(value, dict) or set(value) - {"voice", "speed"}:
        raise BadRequest("'voice' must be an object like {\"voice\": \"joe\", \"speed\": 1.0}")
    name = voice_field(value.get("voice"), "voice.voice")
    speed_field(value.get("speed"), "voice.speed")
    speaker = services().voice.speaker
    if name is not None and speaker.available and name not in speaker.voice_files():
        raise BadRequest(f"no voice named {name!r}; the voices are: {', '.join(speaker.voice_files())}")
    return value


def created(body: dict) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


# companions ----------------------------------------------------------------------------------

def companion_filters() -> dict:
    """GET /api/companions' q, tags, sort and order, each checked against the declared limits."""
    args = request.args
    q = args.get("q", "").strip()
    if len(q) > MAX_SEARCH_LENGTH:
        raise BadRequest(f"q is too long (at most {MAX_SEARCH_LENGTH} characters)")
    tags = [t.strip() for t in args.get("tags", "").split(",") if t.strip()]
    if len(tags) > MAX_FILTER_TAGS:
        raise BadRequest(f"tags: at most {MAX_FILTER_TAGS} tags in one filter, not {len(tags)}")
    if any(len(t) > MAX_TAG_LENGTH for t in tags):
        raise BadRequest(f"tags: a tag has at most {MAX_TAG_LENGTH} characters")
    sort = args.get("sort", "created")
    if sort not in COMPANION_SORTS:
        raise BadRequest(f"sort must be one of {', '.join(COMPANION_SORTS)}")
    order = args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be 'asc' or 'desc'")
    return {"q": q, "tags": tags, "sort": sort, "order": order}


@bp.get("/api/companions")
def list_companions():
    rows, total = services().companions.list(*page(), **companion_filters())
    return jsonify({"items": [{**companion_json(r), "chat_count": r["chat_count"], "last_chat_at": r["last_chat_at"]}
                              for r in rows], "total": total})


@bp.post("/api/companions")
def create_companion():
    card, settings = split_companion_body(json_object(), creating=True)
    normalized = normalize_card({"spec": "chara_card_v3", "data": card})
    return created(companion_json(services().companions.create(normalized, settings)))


@bp.post("/api/companions/import")
def import_companion():
    """A new companion from a card: raw body, or multipart field `file`."""
    data, _, _ = uploaded_file("card")
    return created(companion_json(services().companions.import_new(data)))


@bp.get("/api/companions/<int:companion_id>")
def get_companion(companion_id: int):
    return jsonify(companion_json(services().companions.get(companion_id)))


@bp.patch("/api/companions/<int:companion_id>")
def patch_companion(companion_id: int):
    card, settings = split_companion_body(json_object(), creating=False)
    return jsonify(companion_json(services().companions.update(companion_id, card, settings)))


@bp.delete("/api/companions/<int:companion_id>")
def delete_companion(companion_id: int):
    services().companions.delete(companion_id)
    return Response(status=204)


@bp.post("/api/companions/<int:companion_id>/activate")
def activate_companion(companion_id: int):
    return jsonify(companion_json(services().companions.activate(companion_id)))


def avatar_size() -> bool:
    """Whether ?size= asks for the thumbnail ('thumb') rather than the whole picture ('full', the default)."""
    size = request.args.get("size", "full")
    if size not in ("full", "thumb"):
        raise BadRequest("size must be 'full' or 'thumb'")
    return size == "thumb"


def png_response(png: bytes) -> Response:
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})


@bp.get("/api/companions/<int:companion_id>/avatar")
def companion_avatar(companion_id: int):
    return png_response(services().companions.avatar_png(companion_id, thumb=avatar_size()))


@bp.put("/api/companions/<int:companion_id>/avatar")
def put_companion_avatar(companion_id: int):
    services().companions.get(companion_id)
    services().companions.set_avatar(uploaded_file("image")[0], companion_id)
    return jsonify(companion_json(services().companions.get(companion_id)))


@bp.get("/api/companions/<int:companion_id>/card.json")
def companion_card_json(companion_id: int):
    card = services().companions.card_json(companion_id)
    response = jsonify(card)
    response.headers["Content-Disposition"] = f'attachment; filename="{download_name(card)}.json"'
    return response


@bp.get("/api/companions/<int:companion_id>/card.png")
def companion_card_png(companion_id: int):
    companions = services().companions
    png = companions.card_png(companion_id)
    name = download_name(companions.card_json(companion_id))
    return Response(png, mimetype="image/png",
                    headers={"Content-Disposition": f'attachment; filename="{name}.png"'})


def download_name(card: dict) -> str:
    """A safe file name from a card's name."""
    return file_name(card["data"]["name"], "companion")


def file_name(name: str, fallback: str) -> str:
    """A safe download file name from a name (the fallback when nothing is left of it)."""
    return "".join(c for c in name if c.isalnum() or c in " -_").strip() or fallback


# personas ------------------------------------------------------------------------------------

def persona_json(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "persona": row["persona"],
            "active": row["id"] == services().companions.active_user_id(),
            "avatar_url": f"/api/personas/{row['id']}/avatar" if row.get("avatar") else None,
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def persona_fields(body: dict, creating: bool) -> dict:
    checked = parse(PersonaNew if creating else PersonaBody, body)
    fields = {k: v for k, v in checked.given().items() if k in ("name", "persona")}
    if creating:
        fields.setdefault("persona", "")
    return fields


@bp.get("/api/personas")
def list_personas():
    rows, total = services().companions.list_users(*page())
    return jsonify({"items": [persona_json(r) for r in rows], "total": total})


@bp.post("/api/personas")
def create_persona():
    fields = persona_fields(json_object(), creating=True)
    return created(persona_json(services().companions.create_user(fields["name"], fields["persona"])))


@bp.get("/api/personas/<int:user_id>")
def get_persona(user_id: int):
    return jsonify(persona_json(services().companions.get_user(user_id)))


@bp.patch("/api/personas/<int:user_id>")
def patch_persona(user_id: int):
    fields = persona_fields(json_object(), creating=False)
    return jsonify(persona_json(services().companions.patch_user(user_id, fields)))


@bp.delete("/api/personas/<int:user_id>")
def delete_persona(user_id: int):
    services().companions.delete_user(user_id)
    return Response(status=204)


@bp.post("/api/personas/<int:user_id>/activate")
def activate_persona(user_id: int):
    return jsonify(persona_json(services().companions.activate_user(user_id)))


@bp.get("/api/personas/<int:user_id>/avatar")
def persona_avatar(user_id: int):
    """A persona's avatar (the default picture when it has none), or its thumbnail."""
    return png_response(services().companions.user_avatar_png(user_id, thumb=avatar_size()))


@bp.put("/api/personas/<int:user_id>/avatar")
def put_persona_avatar(user_id: int):
    services().companions.get_user(user_id)
    return jsonify(persona_json(services().companions.set_user_avatar(user_id, uploaded_file("image")[0])))


@bp.delete("/api/personas/<int:user_id>/avatar")
def delete_persona_avatar(user_id: int):
    return jsonify(persona_json(services().companions.set_user_avatar(user_id, None)))
