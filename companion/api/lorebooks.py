"""REST for lorebooks (world info): import, list, read, edit entries, delete, export, attach."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.companions import created, page
from companion.api.schemas import LorebookRef
from companion.api.validate import json_body, json_object, uploaded_file
from companion.characters.lorebooks import BOOK_FIELDS, ENTRY_FIELDS, entry_json
from companion.errors import BadRequest

bp = Blueprint("lorebooks", __name__)


def lorebook_json(row: dict, with_entries: bool = True) -> dict:
    book = services().lorebooks.book(row)
    body = {"id": row["id"], "name": row["name"], "description": book.description, "format": row["format"],
            "scan_depth": book.scan_depth, "token_budget": book.token_budget,
            "entry_count": len(book.entries), "companion_ids": row["companion_ids"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}
    if with_entries:
        body["entries"] = [entry_json(i, e) for i, e in enumerate(book.entries)]
    return body


def only(body: dict, allowed: tuple[str, ...]) -> dict:
    unknown = set(body) - set(allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    return body


@bp.get("/api/lorebooks")
def list_lorebooks():
    rows, total = services().lorebooks.list(*page())
    return jsonify({"items": [lorebook_json(r, with_entries=False) for r in rows], "total": total})


@bp.post("/api/lorebooks")
def create_lorebook():
    body = json_object()
    fields = only({k: v for k, v in body.items() if k != "entries"}, BOOK_FIELDS)
    entries = body.get("entries", [])
    if not isinstance(entries, list):
        raise BadRequest("'entries' must be a list")
    return created(lorebook_json(services().lorebooks.create(fields, entries)))


@bp.post("/api/lorebooks/import")
def import_lorebook():
    """A lorebook file: SillyTavern world info, a V3 lorebook or a character_book (raw or multipart 'file')."""
    data, _, upload = uploaded_file("lorebook")
    name = (upload.filename or "").rsplit(".", 1)[0] if upload else ""
    return created(lorebook_json(services().lorebooks.import_bytes(data, name)))


@bp.get("/api/lorebooks/<int:lorebook_id>")
def get_lorebook(lorebook_id: int):
    return jsonify(lorebook_json(services().lorebooks.get(lorebook_id)))


@bp.patch("/api/lorebooks/<int:lorebook_id>")
def patch_lorebook(lorebook_id: int):
    fields = only(json_object(), BOOK_FIELDS)
    return jsonify(lorebook_json(services().lorebooks.update(lorebook_id, fields)))


@bp.delete("/api/lorebooks/<int:lorebook_id>")
def delete_lorebook(lorebook_id: int):
    services().lorebooks.delete(lorebook_id)
    return Response(status=204)


@bp.get("/api/lorebooks/<int:lorebook_id>/export")
def export_lorebook(lorebook_id: int):
    fmt = request.args.get("format") or None
    if fmt not in (None, "character_book", "sillytavern", "lorebook_v3"):
        raise BadRequest("format must be character_book, sillytavern or lorebook_v3")
    return jsonify(services().lorebooks.export(lorebook_id, fmt))


@bp.post("/api/lorebooks/<int:lorebook_id>/entries")
def add_entry(lorebook_id: int):
    fields = only(json_object(), ENTRY_FIELDS)
    row, index = services().lorebooks.add_entry(lorebook_id, fields)
    return created(entry_json(index, services().lorebooks.book(row).entries[index]))


@bp.patch("/api/lorebooks/<int:lorebook_id>/entries/<int:index>")
def patch_entry(lorebook_id: int, index: int):
    fields = only(json_object(), ENTRY_FIELDS)
    row = services().lorebooks.update_entry(lorebook_id, index, fields)
    return jsonify(entry_json(index, services().lorebooks.book(row).entries[index]))


@bp.delete("/api/lorebooks/<int:lorebook_id>/entries/<int:index>")
def delete_entry(lorebook_id: int, index: int):
    services().lorebooks.delete_entry(lorebook_id, index)
    return Response(status=204)


@bp.post("/api/companions/<int:companion_id>/lorebooks")
def attach_lorebook(companion_id: int):
    services().companions.get(companion_id)
    lorebook_id = json_body(LorebookRef).lorebook_id
    services().lorebooks.attach(companion_id, lorebook_id)
    return jsonify(lorebook_json(services().lorebooks.get(lorebook_id), with_entries=False))


@bp.delete("/api/companions/<int:companion_id>/lorebooks/<int:lorebook_id>")
def detach_lorebook(companion_id: int, lorebook_id: int):
    services().companions.get(companion_id)
    services().lorebooks.detach(companion_id, lorebook_id)
    return Response(status=204)
