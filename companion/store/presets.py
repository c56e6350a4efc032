"""Generation presets."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from companion.store.connection import Connection
from companion.store.rows import PresetRow, preset_row
from companion.store.times import now_iso


class PresetQueries(Connection):
    """Generation presets: the queries."""

    if TYPE_CHECKING:   # the other queries', in Store with these (store/companions.py)
        def update_companion(self, companion_id: int, fields: dict) -> None: ...

    def create_preset(self, name: str, settings: dict, extra: dict | None = None) -> int:
        now = now_iso()
        with self.transaction():
            preset_id = self._insert("presets", {
                "name": name, "settings": json.dumps(settings, ensure_ascii=False),
                "extra": json.dumps(extra or {}, ensure_ascii=False), "created_at": now, "updated_at": now})
            self._changed("preset.created", {"id": preset_id, "name": name})
        return preset_id

    def get_preset(self, preset_id: int) -> PresetRow | None:
        row = self._one("select * from presets where id = ?", [preset_id])
        return preset_row(row) if row else None

    def list_presets(self, limit: int, offset: int) -> tuple[list[PresetRow], int]:
        """A page of presets: the built-in ones first, then by id."""
        rows = self._query("select * from presets order by builtin desc, id limit ? offset ?", [limit, offset])
        return [preset_row(row) for row in rows], self.count("presets")

    def update_preset(self, preset_id: int, name: str, settings: dict) -> None:
        with self.transaction():
            self._update("presets", preset_id, {"name": name, "settings": json.dumps(settings, ensure_ascii=False),
                                                "updated_at": now_iso()})
            self._changed("preset.changed", {"id": preset_id})

    def preset_users(self, preset_id: int) -> list[int]:
        """The companions that use a preset."""
        return [r["id"] for r in self._query("select id from companions where preset_id = ? order by id", [preset_id])]

    def delete_preset(self, preset_id: int) -> list[int]:
        """Delete a preset; the companions that used it use none (returned)."""
        with self.transaction() as db:
            users = self.preset_users(preset_id)
            for companion_id in users:
                self.update_companion(companion_id, {"preset_id": None})
            db.execute("delete from presets where id = ?", [preset_id])
            self._changed("preset.deleted", {"id": preset_id, "companion_ids": users})
        return users
