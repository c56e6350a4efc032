"""Lorebooks and which companions use them."""

from __future__ import annotations

import json

from companion.store.connection import Connection
from companion.store.times import now_iso


class LorebookQueries(Connection):
    """Lorebooks and which companions use them: the queries."""

    def add_lorebook(self, name: str, fmt: str, data: dict) -> int:
        now = now_iso()
        return self._insert("lorebooks", {"name": name, "format": fmt, "created_at": now, "updated_at": now,
                                          "data": json.dumps(data, ensure_ascii=False)})

    def get_lorebook(self, lorebook_id: int) -> dict | None:
        row = self._one("select * from lorebooks where id = ?", [lorebook_id])
        if row is not None:
            row["data"] = json.loads(row["data"])
            row["companion_ids"] = [r["companion_id"] for r in self._query(
                "select companion_id from companion_lorebooks where lorebook_id = ? order by companion_id",
                [lorebook_id])]
        return row

    def list_lorebooks(self, limit: int, offset: int) -> list[dict]:
        with self._lock:   # the ids and the books read as one: a delete on another thread waits
            rows = self._query("select id from lorebooks order by id limit ? offset ?", [limit, offset])
            return self._books([r["id"] for r in rows])

    def _books(self, ids: list[int]) -> list[dict]:
        """The lorebooks of ids read under the lock (so none is missing), in that order."""
        return [book for book in map(self.get_lorebook, ids) if book is not None]

    def set_lorebook(self, lorebook_id: int, name: str, data: dict) -> None:
        self._update("lorebooks", lorebook_id, {"name": name, "updated_at": now_iso(),
                                                "data": json.dumps(data, ensure_ascii=False)})

    def lorebook_in_use(self, lorebook_id: int, besides: int) -> bool:
        """Whether a companion other than `besides` has the lorebook attached or as its card's."""
        row = self._row(
            "select exists(select 1 from companion_lorebooks where lorebook_id = ? and companion_id != ?) "
            "or exists(select 1 from companions where card_lorebook_id = ? and id != ?) as used",
            [lorebook_id, besides, lorebook_id, besides])
        return bool(row["used"])

    def delete_lorebook(self, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from lorebooks where id = ?", [lorebook_id])

    def attach_lorebook(self, companion_id: int, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("insert or ignore into companion_lorebooks (companion_id, lorebook_id) values (?, ?)",
                       [companion_id, lorebook_id])

    def detach_lorebook(self, companion_id: int, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from companion_lorebooks where companion_id = ? and lorebook_id = ?",
                       [companion_id, lorebook_id])

    def companion_lorebook_ids(self, companion_id: int) -> list[int]:
        return [r["lorebook_id"] for r in self._query(
            "select lorebook_id from companion_lorebooks where companion_id = ? order by rowid", [companion_id])]

    def companion_lorebooks(self, companion_id: int) -> list[dict]:
        """The lorebooks attached to a companion, in the order they were attached."""
        with self._lock:
            rows = self._query("select lorebook_id from companion_lorebooks where companion_id = ? order by rowid",
                               [companion_id])
            return self._books([r["lorebook_id"] for r in rows])
