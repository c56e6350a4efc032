"""Generation presets: named sets of generation settings a companion can use; SillyTavern's
text-generation preset JSON in and out.

The precedence of generation settings is global defaults < the companion's preset < the
companion's own settings < a group's preset (in a group chat) < a request's overrides (turns.py).
A SillyTavern preset's keys that we do not use are kept with the preset and written back on export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from companion.errors import Conflict, InvalidInput, NotFound
from companion.formats import jsontext
from companion.store import Store
from companion.store.rows import PresetRow

# SillyTavern's text-generation preset key -> our generation setting. `genamt` is the response
# length; `max_length` is the context size there (kept, not used: the model's n_ctx is ours).
ST_KEYS = {"temp": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
           "rep_pen": "repeat_penalty", "genamt": "max_tokens", "seed": "seed"}
ST_STOP_KEYS = ("custom_stopping_strings", "stopping_strings")   # a list, or a JSON string of one
MAX_KEPT_BYTES = 256 * 1024


class PresetFileError(InvalidInput):
    """A SillyTavern preset file that cannot be read."""


@dataclass
class SillyTavernPreset:
    """A SillyTavern text-generation preset read: our settings (not yet checked) and the rest."""
    settings: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)      # keys we do not use, for export


def read_sillytavern(data: bytes) -> SillyTavernPreset:
    """A SillyTavern text-generation preset (JSON object) as our settings plus the keys kept."""
    try:
        whole = jsontext.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PresetFileError("the preset is not JSON: send a SillyTavern text-generation preset (.json)") from None
    if not isinstance(whole, dict):
        raise PresetFileError("a SillyTavern preset is a JSON object")
    preset = SillyTavernPreset()
    for key, value in whole.items():
        if key in ST_KEYS:
            preset.settings[ST_KEYS[key]] = value
        elif key in ST_STOP_KEYS:
            stops = _stop_list(key, value)
            if stops:
                preset.settings["stop"] = preset.settings.get("stop", []) + [s for s in stops
                                                                            if s not in preset.settings.get("stop", [])]
        else:
            preset.kept[key] = value
    if len(json.dumps(preset.kept)) > MAX_KEPT_BYTES:
        raise PresetFileError(f"the preset's other keys take more than {MAX_KEPT_BYTES // 1024} KiB")
    return preset


def _stop_list(key: str, value: Any) -> list:
    """Stop strings as SillyTavern writes them: a list, or a JSON string of a list ('' for none)."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = jsontext.loads(value)
        except json.JSONDecodeError:
            raise PresetFileError(f"'{key}' must be a list of strings or a JSON string of one") from None
    if not isinstance(value, list):
        raise PresetFileError(f"'{key}' must be a list of strings or a JSON string of one")
    return value


def to_sillytavern(preset: PresetRow) -> dict:
    """A preset as SillyTavern text-generation preset JSON: the keys kept, then our values."""
    out = dict(preset["extra"])
    names = {ours: theirs for theirs, ours in ST_KEYS.items()}
    for key, value in preset["settings"].items():
        if key == "stop":
            out["custom_stopping_strings"] = json.dumps(value, ensure_ascii=False)
        elif key in names:
            out[names[key]] = value
    return out


def preset_settings(store: Store, preset_id: int | None) -> dict:
    """The generation settings of a preset ({} for none, or one deleted meanwhile): what a
    companion's (or a group's) turn puts between the global defaults and its own settings."""
    row = store.get_preset(preset_id) if preset_id else None
    return dict(row["settings"]) if row else {}


class PresetService:
    """Presets: list, create (also from SillyTavern's JSON), change, delete, export."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, preset_id: int) -> PresetRow:
        row = self.store.get_preset(preset_id)
        if row is None:
            raise NotFound(f"no preset with id {preset_id}")
        return row

    def page(self, limit: int, offset: int) -> tuple[list[PresetRow], int]:
        """A page of presets, the built-in ones first."""
        return self.store.list_presets(limit, offset)

    def create(self, name: str, settings: dict, copy_of: int | None = None, kept: dict | None = None) -> PresetRow:
        """A new preset; with copy_of, another preset's settings (and kept keys) under these."""
        if copy_of is not None:
            source = self.get(copy_of)
            settings = {**source["settings"], **settings}
            kept = {**source["extra"], **(kept or {})}
        return self.get(self.store.create_preset(name, settings, kept))

    def import_sillytavern(self, name: str, preset: SillyTavernPreset) -> PresetRow:
        """A new preset from a SillyTavern preset read (its settings checked by the caller)."""
        return self.create(name, preset.settings, kept=preset.kept)

    def update(self, preset_id: int, name: str | None, values: dict, removed: list[str]) -> PresetRow:
        """Rename a preset and/or change its settings (removed ones no longer set); not a built-in one."""
        row = self._changeable(preset_id, "changed")
        settings = {**row["settings"], **values}
        for key in removed:
            settings.pop(key, None)
        self.store.update_preset(preset_id, name or row["name"], settings)
        return self.get(preset_id)

    def delete(self, preset_id: int) -> list[int]:
        """Delete a preset; the companions that used it use none from then on (their ids returned)."""
        self._changeable(preset_id, "deleted")
        return self.store.delete_preset(preset_id)

    def _changeable(self, preset_id: int, what: str) -> PresetRow:
        row = self.get(preset_id)
        if row["builtin"]:
            raise Conflict(f"the built-in preset {row['name']!r} cannot be {what}: copy it "
                           f"(POST /api/presets with copy_of) and change the copy")
        return row

    def users(self, preset_id: int) -> list[int]:
        """The companions that use a preset."""
        return self.store.preset_users(preset_id)

    def export_sillytavern(self, preset_id: int) -> dict:
        return to_sillytavern(self.get(preset_id))
