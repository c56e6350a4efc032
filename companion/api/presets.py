"""REST for generation presets: list, create (or copy), read, change, delete; SillyTavern JSON in and out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify

from companion.api import services
from companion.api.companions import created, file_name, page
from companion.api.schemas import Named, PresetChange, PresetNew
from companion.api.validate import generation_settings, json_body, parse, uploaded_file
from companion.characters.presets import read_sillytavern

if TYPE_CHECKING:   # a row's type only: handlers do not use the store
    from companion.store.rows import PresetRow
bp = Blueprint("presets", __name__)


def preset_json(row: PresetRow) -> dict:
    """A preset as the REST API shows it (the SillyTavern keys kept are in its export)."""
    return {"id": row["id"], "name": row["name"], "builtin": row["builtin"], "settings": row["settings"],
            "companion_ids": services().presets.users(row["id"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


@bp.get("/api/presets")
def list_presets():
    rows, total = services().presets.page(*page())
    return jsonify({"items": [preset_json(r) for r in rows], "total": total})


@bp.post("/api/presets")
def create_preset():
    asked = json_body(PresetNew)
    return created(preset_json(services().presets.create(asked.name, asked.settings or {}, asked.copy_of)))


@bp.post("/api/presets/import")
def import_preset():
    """A SillyTavern text-generation preset: raw JSON body (?name=) or multipart 'file' (and 'name')."""
    data, fields, upload = uploaded_file("preset")
    preset = read_sillytavern(data)
    preset.settings = generation_settings(preset.settings)    # within the declared limits, else a 400
    fallback = Path(upload.filename).stem if upload is not None and upload.filename else "Imported preset"
    name = parse(Named, {"name": fields.get("name") or fallback}).name
    row = services().presets.import_sillytavern(name, preset)
    return created({**preset_json(row), "ignored": sorted(preset.kept)})


@bp.get("/api/presets/<int:preset_id>")
def get_preset(preset_id: int):
    return jsonify(preset_json(services().presets.get(preset_id)))


@bp.patch("/api/presets/<int:preset_id>")
def patch_preset(preset_id: int):
    asked = json_body(PresetChange)
    settings = asked.settings or {}
    values = {k: v for k, v in settings.items() if v is not None}
    removed = [k for k, v in settings.items() if v is None]
    return jsonify(preset_json(services().presets.update(preset_id, asked.name, values, removed)))


@bp.delete("/api/presets/<int:preset_id>")
def delete_preset(preset_id: int):
    services().presets.delete(preset_id)
    return Response(status=204)


@bp.get("/api/presets/<int:preset_id>/export")
def export_preset(preset_id: int):
    """The preset as SillyTavern text-generation preset JSON (with the keys it was imported with)."""
    presets = services().presets
    response = jsonify(presets.export_sillytavern(preset_id))
    name = file_name(presets.get(preset_id)["name"], "preset")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response
