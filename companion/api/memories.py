"""REST for long-term memory: browse, search, add, edit, delete; documents; what a reply used."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from companion.api import services
from companion.api.companions import created, page
from companion.api.schemas import Ids, MemoryNew, TextBody
from companion.api.validate import json_body, parse, uploaded_file
from companion.chat.prompt import resolve_placeholders
from companion.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from companion.formats.documents import DocumentError, extract_text

bp = Blueprint("memories", __name__)


def companion_arg(source: dict) -> int:
    """companion_id from a body or query string, else the active companion; 404 when unknown."""
    if source.get("companion_id") not in (None, ""):
        companion_id = parse(Ids, {"companion_id": source["companion_id"]}).companion_id
        assert companion_id is not None   # given, not null: Ids checks it as an id (a 400 otherwise)
    else:
        companion_id = services().companions.active_companion_id()
    services().companions.get(companion_id)
    return companion_id


def memory_json(row: dict, score: float | None = None, names: tuple[str, str] | None = None) -> dict:
    """A memory: text as stored (what an edit changes), display_text with {{char}}/{{user}} resolved
    (names: the companion's and the persona's, when the caller has them already)."""
    display = resolve_placeholders(row["text"], *(names or services().companions.names(row["companion_id"])))
    return {"id": row["id"], "companion_id": row["companion_id"], "text": row["text"], "display_text": display,
            "source": row["source"], "document_id": row.get("document_id"), "chat_id": row.get("chat_id"),
            "first_message_id": row.get("first_message_id"), "last_message_id": row.get("last_message_id"),
            "created_at": row["created_at"], "score": score}


@bp.get("/api/memories")
def list_memories():
    """Newest first, or ranked by recall score when q is given."""
    args = request.args.to_dict()
    companion_id = companion_arg(args)
    limit, offset = page()
    memory = services().memory
    names = services().companions.names(companion_id)
    query = args.get("q", "").strip()
    if query:
        found, total = memory.search(companion_id, query, limit, offset)
        rows = memory.rows([m.id for m in found])
        items = [memory_json(rows[m.id], m.score, names) for m in found if m.id in rows]
        window = found.window.as_json() if found.window else None
        return jsonify({"items": items, "total": total, "window": window})
    rows, total = memory.list(companion_id, limit, offset)
    return jsonify({"items": [memory_json(r, names=names) for r in rows], "total": total})


@bp.post("/api/memories")
def add_memory():
    body = json_body(MemoryNew)
    row = services().memory.add(companion_arg({"companion_id": body.companion_id}), body.text, "custom",
                                created_at=body.created_at)
    return created(memory_json(row))


@bp.patch("/api/memories/<int:memory_id>")
def edit_memory(memory_id: int):
    services().memory.get(memory_id)
    text = json_body(TextBody).text
    return jsonify(memory_json(services().memory.update_text(memory_id, text)))


@bp.delete("/api/memories/<int:memory_id>")
def delete_memory(memory_id: int):
    services().memory.get(memory_id)
    services().memory.delete([memory_id])
    return Response(status=204)


@bp.delete("/api/memories")
def erase_memories():
    """Forget everything a companion remembers (the active one unless companion_id is given)."""
    companion_id = companion_arg(request.args.to_dict())
    return jsonify({"deleted": services().memory.erase(companion_id)})


@bp.get("/api/messages/<int:message_id>/context")
def message_context(message_id: int):
    """The memories (id, score, text as it reads now) and lore entries a reply used."""
    return jsonify(services().messages.context(message_id))


# documents -----------------------------------------------------------------------------------

def document_json(row: dict) -> dict:
    return {k: row[k] for k in ("id", "companion_id", "name", "media_type", "size", "chunks", "created_at")}


@bp.post("/api/memories/documents")
def add_document():
    """A document into memory: multipart 'file' (optional form field companion_id), or a raw body."""
    data, source, upload = uploaded_file("document")
    if upload is not None:
        name, declared = upload.filename or "document", upload.mimetype or ""
    else:
        name, declared = source.get("name") or "document", request.mimetype or ""
    companion_id = companion_arg(source)
    try:
        text, media_type = extract_text(data, name, declared)
        row = services().memory.add_document(companion_id, name[:200], media_type, len(data), text)
    except DocumentError as exc:
        raise {413: PayloadTooLarge, 415: UnsupportedMediaType}.get(exc.status, BadRequest)(str(exc)) from None
    return created(document_json(row))


@bp.get("/api/memories/documents")
def list_documents():
    companion_id = companion_arg(request.args.to_dict())
    limit, offset = page()
    rows, total = services().memory.documents(companion_id, limit, offset)
    return jsonify({"items": [document_json(r) for r in rows], "total": total})


@bp.delete("/api/memories/documents/<int:document_id>")
def delete_document(document_id: int):
    services().memory.delete_document(document_id)
    return Response(status=204)
