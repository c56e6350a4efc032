"""Messages: adding, swipes, pages, search, the ones to summarize."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from companion.store.connection import Connection, conditions
from companion.store.rows import MessageRow, message_row
from companion.store.times import now_iso, utc_iso


class MessageQueries(Connection):
    """Messages: the queries."""

    if TYPE_CHECKING:   # the other queries', in Store with these (store/chats.py, store/companions.py)
        def chat_members(self, chat_id: int) -> list[int]: ...
        def active_user_id(self) -> int: ...

    def messages(self, chat_id: int, limit: int | None = None) -> list[MessageRow]:
        """A chat's messages, oldest first; with limit, only the newest `limit`."""
        if limit is None:
            rows = self._query("select * from messages where chat_id = ? order by id", [chat_id])
        else:
            rows = self._query(
                "select * from messages where chat_id = ? order by id desc limit ?", [chat_id, limit])[::-1]
        return [message_row(r) for r in rows]

    def has_user_message(self, chat_id: int) -> bool:
        """Whether the person has written in a chat."""
        return self._one("select 1 as x from messages where chat_id = ? and ai = 0 limit 1", [chat_id]) is not None

    def count_initiated(self, companion_id: int, since: str) -> int:
        """Messages a companion wrote first since a UTC ISO time."""
        return self._row("select count(*) as n from messages where companion_id = ? and initiated = 1 "
                         "and created_at >= ?", [companion_id, since])["n"]

    def count_messages(self, chat_id: int) -> int:
        return self._row("select count(*) as n from messages where chat_id = ?", [chat_id])["n"]

    def get_message(self, message_id: int) -> MessageRow | None:
        row = self._one("select * from messages where id = ?", [message_id])
        return message_row(row) if row else None

    def set_swipes(self, message_id: int, swipes: list[str], swipe_id: int) -> None:
        """A reply's alternatives and the chosen one (which becomes its text)."""
        with self.transaction():
            self._update("messages", message_id, {"swipes": json.dumps(swipes, ensure_ascii=False),
                                                  "swipe_id": swipe_id, "text": swipes[swipe_id]})
            self._message_changed("message.swiped", message_id)

    def messages_to_summarize(self, chat_id: int, limit: int) -> list[MessageRow]:
        """The oldest messages of a chat that left its history window unsummarized (at most limit)."""
        return [message_row(r) for r in self._query(
            "select m.* from messages m join chats h on h.id = m.chat_id where m.chat_id = ? "
            "and m.id > h.summarized_through and m.id < coalesce(h.window_start_id, 0) "
            "order by m.id limit ?", [chat_id, limit])]

    def page_messages(self, chat_id: int, limit: int, offset: int) -> list[MessageRow]:
        return [message_row(r) for r in self._query(
            "select * from messages where chat_id = ? order by id limit ? offset ?", [chat_id, limit, offset])]

    def search_messages(self, query: str, companion_id: int | None, chat_id: int | None,
                        limit: int, offset: int) -> tuple[list[dict], int]:
        """Full-text search (FTS5, ranked by bm25) with a highlighted snippet, chat and companion."""
        clause, params = conditions(("messages_fts match ?", query), ("h.companion_id = ?", companion_id),
                                    ("m.chat_id = ?", chat_id))
        base = (f"from messages_fts join messages m on m.id = messages_fts.rowid "
                f"join chats h on h.id = m.chat_id where {clause}")
        rows = self._query(
            f"select m.id, m.chat_id, h.companion_id, h.group_id, m.ai, m.text, m.created_at, "
            f"m.companion_id as speaker_companion_id, m.user_id as speaker_user_id, "
            f"snippet(messages_fts, 0, '[', ']', '…', 12) as snippet, bm25(messages_fts) as rank "
            f"{base} order by rank limit ? offset ?", params + [limit, offset])
        for row in rows:
            row["ai"] = bool(row["ai"])
        total = self._row(f"select count(*) as n {base}", params)["n"]
        return rows, total

    def add_message(self, chat_id: int, ai: bool, text: str, greeting: bool = False,
                    created_at: str | None = None, speaker_id: int | None = None,
                    initiated: bool = False) -> MessageRow:
        """Append one message to a chat; returns the stored row. The speaker is a companion
        (ai) or a user persona; by default the chat's first member or the active persona.
        initiated: the companion wrote it first."""
        with self.transaction():    # written and read back with no delete on another thread between
            message_id = self._insert("messages", {
                "chat_id": chat_id, "ai": int(ai), "text": text, "greeting": int(greeting),
                "initiated": int(initiated), "created_at": utc_iso(created_at),
                **self._speaker(chat_id, ai, speaker_id),
            })
            row = self.get_message(message_id)
            self._changed("message.created", {"chat_id": chat_id, "message": row})
        assert row is not None   # just written, in the same transaction
        return row

    def _speaker(self, chat_id: int, ai: bool, speaker_id: int | None) -> dict:
        if ai:
            members = self.chat_members(chat_id) if speaker_id is None else [speaker_id]
            return {"companion_id": members[0] if members else None}
        return {"user_id": speaker_id or self.active_user_id()}

    def add_messages(self, chat_id: int, items: list[tuple]) -> list[int]:
        """Append many messages, (ai, text) or (ai, text, created_at), in one transaction;
        returns their ids in order. Messages without a time get now; speakers as add_message."""
        now = now_iso()
        ids = []
        with self.transaction():
            speakers = {ai: self._speaker(chat_id, ai, None) for ai in (True, False)}
            for ai, text, *when in items:
                ids.append(self._insert(
                    "messages", {"chat_id": chat_id, "ai": int(ai), "text": text, "greeting": 0,
                                 "created_at": utc_iso(when[0]) if when and when[0] else now,
                                 **speakers[bool(ai)]}))
            self._changed("chat.changed", {"id": chat_id, "fields": ["messages"]})
        return ids

    def messages_by_ids(self, ids: list[int]) -> list[MessageRow]:
        """Messages by id, in the order of ids (missing ones left out)."""
        rows = {r["id"]: message_row(r) for r in self._by_ids("select * from messages", ids)}
        return [rows[i] for i in ids if i in rows]

    def set_message_text(self, message_id: int, text: str) -> None:
        with self.transaction():
            self._update("messages", message_id, {"text": text})
            self._message_changed("message.edited", message_id)

    def _message_changed(self, kind: str, message_id: int) -> None:
        row = self.get_message(message_id)
        if row is not None:
            self._changed(kind, {"chat_id": row["chat_id"], "message": row})

    def delete_message(self, message_id: int) -> None:
        with self.transaction() as db:
            row = self._one("select chat_id from messages where id = ?", [message_id])
            db.execute("delete from messages where id = ?", [message_id])
            if row:
                self._changed("message.deleted", {"chat_id": row["chat_id"], "id": message_id})

    def clear_chat(self, chat_id: int) -> None:
        """Delete every message of a chat."""
        with self.transaction() as db:
            db.execute("delete from messages where chat_id = ?", [chat_id])
            self._changed("chat.changed", {"id": chat_id, "fields": ["messages"]})
