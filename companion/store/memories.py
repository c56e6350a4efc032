"""Long-term memory rows (the index is built from them), what a reply used, dialogue-tuning examples."""

from __future__ import annotations

import json
from typing import Iterator

from companion.store.connection import Connection, conditions
from companion.store.times import now_iso, utc_iso


class MemoryQueries(Connection):
    """Long-term memory rows (the index is built from them), what a reply used, dialogue-tuning examples: the queries."""

    def add_memory(self, companion_id: int, text: str, source: str,
                   user_message_id: int | None = None, reply_message_id: int | None = None,
                   created_at: str | None = None, document_id: int | None = None,
                   covers: tuple[int, int, int] | None = None) -> dict:
        """Insert one memory row; the caller indexes it. covers: (chat id, first message id,
        last message id) of the messages a summary sums up."""
        chat_id, first_id, last_id = covers or (None, None, None)
        with self.transaction():    # written and read back with no delete on another thread between
            memory_id = self._insert("memories", {
                "companion_id": companion_id, "text": text, "source": source,
                "user_message_id": user_message_id, "reply_message_id": reply_message_id,
                "created_at": utc_iso(created_at), "document_id": document_id,
                "chat_id": chat_id, "first_message_id": first_id, "last_message_id": last_id,
            })
            self._changed("memory.added", {"id": memory_id, "companion_id": companion_id, "source": source,
                                           "chat_id": chat_id})
            row = self.get_memory(memory_id)
        assert row is not None   # just written, in the same transaction
        return row

    def get_memory(self, memory_id: int) -> dict | None:
        return self._one("select * from memories where id = ?", [memory_id])

    def memories_by_ids(self, ids: list[int]) -> list[dict]:
        return self._by_ids("select * from memories", ids)

    def memories_of_messages(self, message_ids: list[int]) -> list[dict]:
        """Memory rows made from any of these messages."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return self._query(
            f"select * from memories where user_message_id in ({marks}) "
            f"or reply_message_id in ({marks})", list(message_ids) * 2)

    def memory_ids(self, companion_id: int | None = None) -> list[int]:
        if companion_id is None:
            return [r["id"] for r in self._query("select id from memories")]
        return [r["id"] for r in self._query(
            "select id from memories where companion_id = ?", [companion_id])]

    def iter_memories(self, batch: int = 256) -> Iterator[list[dict]]:
        """Every memory row, in batches, for (re)indexing."""
        last = 0
        while True:
            rows = self._query(
                "select * from memories where id > ? order by id limit ?", [last, batch])
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]

    def memory_facts(self, ids: list[int]) -> list[dict]:
        """(id, companion_id, created_at, text) of memory rows, for the vector index's copy."""
        return self._by_ids("select id, companion_id, created_at, text from memories", ids)

    def match_memories(self, match: str, companion_id: int, limit: int,
                       since: str | None = None, until: str | None = None) -> list[int]:
        """Ids of a companion's memories matching an FTS5 query, best bm25 first; since/until
        (UTC ISO) narrow it to a time window [since, until)."""
        clause, params = conditions(("memories_fts match ?", match), ("m.companion_id = ?", companion_id),
                                    ("m.created_at >= ?", since), ("m.created_at < ?", until))
        rows = self._query(
            "select m.id from memories_fts join memories m on m.id = memories_fts.rowid "
            f"where {clause} order by bm25(memories_fts) limit ?", params + [limit])
        return [r["id"] for r in rows]

    def set_memory_text(self, memory_id: int, text: str) -> None:
        with self.transaction():
            self._update("memories", memory_id, {"text": text})
            self._changed("memory.changed", {"id": memory_id})

    def delete_memories(self, ids: list[int]) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self.transaction() as db:
            db.execute(f"delete from memories where id in ({marks})", list(ids))
            self._changed("memory.deleted", {"ids": list(ids)})

    def list_memories(self, companion_id: int, limit: int, offset: int) -> list[dict]:
        """A companion's memories, newest first."""
        return self._query("select * from memories where companion_id = ? order by id desc limit ? offset ?",
                           [companion_id, limit, offset])

    def count_memories(self, companion_id: int) -> int:
        return self._row("select count(*) as n from memories where companion_id = ?", [companion_id])["n"]

    def set_context(self, message_id: int, memories: list[dict], lore: list[dict]) -> None:
        """What a reply used (memories and lore); a note kept with the message stays."""
        with self.transaction() as db:
            db.execute("insert into message_context (message_id, memories, lore) values (?, ?, ?) "
                       "on conflict (message_id) do update set memories = excluded.memories, lore = excluded.lore",
                       [message_id, json.dumps(memories, ensure_ascii=False), json.dumps(lore, ensure_ascii=False)])

    def get_context(self, message_id: int) -> dict | None:
        row = self._one("select * from message_context where message_id = ?", [message_id])
        if row is None:
            return None
        return {"memories": json.loads(row["memories"]), "lore": json.loads(row["lore"])}

    def set_note(self, message_id: int, note: str, memories: list[dict], lore: list[dict]) -> None:
        """The note a turn's prompt put just before a message (placeholders unresolved) and what it
        shows: memories ({id, score, relevance}) and lore entries (as a reply's context says them)."""
        shows = json.dumps({"memories": memories, "lore": lore}, ensure_ascii=False)
        with self.transaction() as db:
            db.execute("insert into message_context (message_id, note, note_shows) values (?, ?, ?) "
                       "on conflict (message_id) do update set note = excluded.note, note_shows = excluded.note_shows",
                       [message_id, note, shows])

    def notes(self, message_ids: list[int]) -> dict[int, dict]:
        """The notes kept with these messages: {message id: {note, memories, lore}} (those with one)."""
        out: dict[int, dict] = {}
        for start in range(0, len(message_ids), 900):
            part = list(message_ids[start:start + 900])
            rows = self._query(f"select message_id, note, note_shows from message_context where note is not null "
                               f"and message_id in ({','.join('?' * len(part))})", part)
            for row in rows:
                shows = json.loads(row["note_shows"] or "{}")
                out[row["message_id"]] = {"note": row["note"], "memories": shows.get("memories", []),
                                          "lore": shows.get("lore", [])}
        return out

    def add_tuning_example(self, companion_id: int, user_text: str, ai_text: str) -> None:
        self._insert("tuning_examples", {"companion_id": companion_id, "user_text": user_text,
                                         "ai_text": ai_text, "created_at": now_iso()})

    def latest_tuning_example(self, companion_id: int) -> dict | None:
        return self._one("select * from tuning_examples where companion_id = ? "
                         "order by id desc limit 1", [companion_id])

    def clear_tuning_examples(self, companion_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from tuning_examples where companion_id = ?", [companion_id])
