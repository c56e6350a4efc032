"""Chats: one-to-one and group chats, their window and summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.store.connection import Connection
from companion.store.rows import ChatRow, MessageRow
from companion.store.times import now_iso


class ChatQueries(Connection):
    """Chats: the queries."""

    if TYPE_CHECKING:   # the other queries', in Store with these (store/messages.py)
        def add_message(self, chat_id: int, ai: bool, text: str, greeting: bool = False,
                        created_at: str | None = None, speaker_id: int | None = None,
                        initiated: bool = False) -> MessageRow: ...

    def create_chat(self, companion_id: int, title: str = "", greeting: str | None = None) -> int:
        """Open a new chat for a companion, make it its active chat, and greet in it
        (with its first message, or the greeting given)."""
        with self.transaction():
            chat_id = self._insert(
                "chats", {"companion_id": companion_id, "title": title, "created_at": now_iso()})
            self._changed("chat.created", {"id": chat_id, "companion_id": companion_id})
            self._insert("chat_members", {"chat_id": chat_id, "companion_id": companion_id, "position": 0})
            self._update("companions", companion_id, {"active_chat_id": chat_id})
            if greeting is None:
                self.add_greeting(chat_id)
            elif greeting:
                self.add_message(chat_id, ai=True, text=greeting, greeting=True)
        return int(chat_id)

    def get_chat(self, chat_id: int) -> ChatRow | None:
        row = self._one("select * from chats where id = ?", [chat_id])
        return self._chat_rows([row])[0] if row else None

    def _chat_rows(self, rows: list[dict]) -> list[ChatRow]:
        """Chats rows decoded, with their members."""
        members: dict[int, list[int]] = {row["id"]: [] for row in rows}
        for start in range(0, len(rows), 900):
            part = [row["id"] for row in rows[start:start + 900]]
            for member in self._query(f"select chat_id, companion_id from chat_members where chat_id in "
                                      f"({','.join('?' * len(part))}) order by chat_id, position", part):
                members[member["chat_id"]].append(member["companion_id"])
        for row in rows:
            row["story_so_far"] = bool(row["story_so_far"])
            row["members"] = members[row["id"]]
        return rows  # type: ignore[return-value]

    def chat_members(self, chat_id: int) -> list[int]:
        """A chat's member companions, in order."""
        return [r["companion_id"] for r in self._query(
            "select companion_id from chat_members where chat_id = ? order by position", [chat_id])]

    def add_greeting(self, chat_id: int) -> None:
        """Open a chat with its companion's first message, when it has one."""
        row = self._one(
            "select c.first_message from chats h join companions c on c.id = h.companion_id "
            "where h.id = ?", [chat_id])
        if row and row["first_message"]:
            self.add_message(chat_id, ai=True, text=row["first_message"], greeting=True)

    def active_chat_id(self, companion_id: int) -> int:
        """The companion's current chat, opening one if it has none."""
        row = self._one(
            "select h.id from companions c join chats h on h.id = c.active_chat_id where c.id = ?",
            [companion_id])
        if row:
            return int(row["id"])
        return self.create_chat(companion_id)

    def list_chats(self, companion_id: int | None, limit: int, offset: int,
                   group_id: int | None = None) -> tuple[list[ChatRow], int]:
        """Chats (of one companion, not its groups'; of one group; or all), newest first, with
        message counts."""
        where, params = ("", [])
        if group_id:
            where, params = "where h.group_id = ?", [group_id]
        elif companion_id:
            where, params = "where h.companion_id = ? and h.group_id is null", [companion_id]
        rows = self._query(
            f"select h.*, count(m.id) as message_count, max(m.created_at) as last_message_at "
            f"from chats h left join messages m on m.chat_id = h.id {where} "
            f"group by h.id order by h.id desc limit ? offset ?", params + [limit, offset])
        total = self._row(f"select count(*) as n from chats h {where}", params)["n"]
        return self._chat_rows(rows), total

    def set_window_start(self, chat_id: int, message_id: int) -> bool:
        """Record where the chat's prompt history window starts; True when it moved on."""
        with self.transaction():
            row = self._one("select window_start_id from chats where id = ?", [chat_id])
            if row is None or (row["window_start_id"] or 0) >= message_id:
                return False
            self._update("chats", chat_id, {"window_start_id": message_id})
            return True

    def chats_to_summarize(self) -> list[int]:
        """Chats with messages that left the history window and are not summarized yet."""
        return [r["id"] for r in self._query(
            "select h.id from chats h where h.window_start_id is not null and exists "
            "(select 1 from messages m where m.chat_id = h.id and m.id > h.summarized_through "
            "and m.id < h.window_start_id) order by h.id")]

    def set_summarized_through(self, chat_id: int, message_id: int) -> None:
        self._update("chats", chat_id, {"summarized_through": message_id})

    def chat_summaries(self, chat_id: int) -> list[dict]:
        """A chat's summaries, oldest first."""
        return self._query("select * from memories where chat_id = ? and source = 'summary' "
                           "order by first_message_id, id", [chat_id])

    def delete_chat(self, chat_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from chats where id = ?", [chat_id])
            self._changed("chat.deleted", {"id": chat_id})
