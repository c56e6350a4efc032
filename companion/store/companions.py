"""Companions and the user's personas: rows, the active ones, finding, the defaults a new database starts with."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal, overload

from companion.store.connection import Connection, conditions
from companion.store.rows import COMPANION_FIELDS, JSON_FIELDS, CompanionRow, companion_row
from companion.store.times import now_iso

DEFAULT_COMPANION = {
    "name": "Assistant",
    "persona": (
        "{{char}} is a friendly, curious and warm companion who enjoys talking with {{user}}, "
        "remembers what {{user}} tells them and answers honestly."
    ),
    "example_dialogue": (
        "{{user}}: Hi! How are you?\n{{char}}: Hi {{user}}! I'm doing well, thanks for asking. "
        "How was your day?"
    ),
    "first_message": "Hello {{user}}, I'm {{char}}. What would you like to talk about?",
    "long_term_mem": 2,
    "short_term_mem": 10,
    "roleplay": 1,
    "dialogue_tuning": 0,
}
DEFAULT_USER = {"name": "User", "persona": "{{user}} is a human who talks with {{char}}."}

# GET /api/companions' sorts: what each orders by (never-chatted companions last by last chat)
COMPANION_ORDER = {"name": "casefold(c.name) {order}, c.id {order}", "created": "c.created_at {order}, c.id {order}",
                   "modified": "c.updated_at {order}, c.id {order}",
                   "last_chat": "last_chat_at is null, last_chat_at {order}, c.id {order}"}



class CompanionQueries(Connection):
    """Companions and the user's personas: the queries."""

    if TYPE_CHECKING:   # the other queries', in Store with these (store/chats.py)
        def create_chat(self, companion_id: int, title: str = "", greeting: str | None = None) -> int: ...

    def _seed(self) -> None:
        with self.transaction() as db:
            if db["companions"].count == 0:
                companion_id = self.create_companion(DEFAULT_COMPANION)
                self.set_state("active_companion_id", companion_id)
            if db["users"].count == 0:
                now = now_iso()
                user_id = self._insert("users", {**DEFAULT_USER, "created_at": now, "updated_at": now})
                self.set_state("active_user_id", user_id)

    def active_companion_id(self) -> int:
        """The companion the AI Companion API acts on."""
        value = self.get_state("active_companion_id")
        if value is None or self.get_companion(int(value)) is None:
            row = self._one("select id from companions order by id limit 1")
            assert row is not None   # the last companion cannot be deleted (characters/companions.py)
            return int(row["id"])
        return int(value)

    def active_user_id(self) -> int:
        """The user persona in use ({{user}})."""
        value = self.get_state("active_user_id")
        if value is None or self.get_user(int(value)) is None:
            row = self._one("select id from users order by id limit 1")
            assert row is not None   # the last persona cannot be deleted (characters/companions.py)
            return int(row["id"])
        return int(value)

    def create_companion(self, fields: dict) -> int:
        """Insert a companion and open its first chat with its first message."""
        now = now_iso()
        with self.transaction():
            row = {k: v for k, v in fields.items() if k in COMPANION_FIELDS}
            for key in JSON_FIELDS:
                if key in row:
                    row[key] = json.dumps(row[key], ensure_ascii=False)
            companion_id = self._insert("companions", {**row, "created_at": now, "updated_at": now})
            self._changed("companion.created", {"id": companion_id, "name": row.get("name", "")})
            self.create_chat(companion_id)
        return int(companion_id)

    def get_companion(self, companion_id: int) -> CompanionRow | None:
        row = self._one("select * from companions where id = ?", [companion_id])
        return companion_row(row) if row else None

    def update_companion(self, companion_id: int, fields: dict) -> None:
        """Change some fields of a companion (unknown keys are a programming error)."""
        unknown = set(fields) - set(COMPANION_FIELDS)
        if unknown:
            raise KeyError(f"not companion fields: {sorted(unknown)}")
        values = dict(fields)
        for key in JSON_FIELDS:
            if key in values:
                values[key] = json.dumps(values[key], ensure_ascii=False)
        values["updated_at"] = now_iso()
        with self.transaction():
            self._update("companions", companion_id, values)
            self._changed("companion.changed", {"id": companion_id, "fields": sorted(fields)})

    @overload
    def list_rows(self, table: Literal["companions"], limit: int, offset: int) -> list[CompanionRow]: ...
    @overload
    def list_rows(self, table: Literal["users"], limit: int, offset: int) -> list[dict]: ...

    def list_rows(self, table: str, limit: int, offset: int) -> list[CompanionRow] | list[dict]:
        """A page of companions or users, oldest first."""
        assert table in ("companions", "users")
        rows = self._query(f"select * from [{table}] order by id limit ? offset ?", [limit, offset])
        return [companion_row(row) for row in rows] if table == "companions" else rows

    def find_companions(self, q: str, tags: list[str], sort: str, order: str, limit: int,
                        offset: int) -> tuple[list[CompanionRow], int]:
        """A page of companions whose name, nickname, description or creator notes hold q (any case)
        and that have every tag (any case), with chat_count and last_chat_at (their newest message
        but greetings); sort one of COMPANION_ORDER, order 'asc' or 'desc'."""
        clause, params = conditions(
            ("instr(casefold(c.name || char(10) || coalesce(json_extract(c.card, '$.nickname'), '') || char(10) || "
             "c.persona || char(10) || coalesce(json_extract(c.card, '$.creator_notes'), '')), casefold(?)) > 0", q))
        for tag in tags:
            clause += (" and exists (select 1 from json_each(c.card, '$.tags') t "
                       "where t.type = 'text' and casefold(t.value) = casefold(?))")
            params.append(tag)
        rows = self._query(
            "select c.*, (select count(*) from chats h where h.companion_id = c.id) as chat_count, "
            "(select max(m.created_at) from chats h join messages m on m.chat_id = h.id "
            "where h.companion_id = c.id and m.greeting = 0) as last_chat_at "
            f"from companions c where {clause} order by {COMPANION_ORDER[sort].format(order=order)} "
            "limit ? offset ?", params + [limit, offset])
        total = self._row(f"select count(*) as n from companions c where {clause}", params)["n"]
        return [companion_row(row) for row in rows], total

    def delete_companion(self, companion_id: int) -> None:
        """Delete a companion; its chats, messages, memories and examples go with it."""
        with self.transaction() as db:
            db.execute("delete from companions where id = ?", [companion_id])
            self._changed("companion.deleted", {"id": companion_id})

    def create_user(self, name: str, persona: str) -> int:
        now = now_iso()
        with self.transaction():
            user_id = self._insert("users", {"name": name, "persona": persona, "created_at": now, "updated_at": now})
            self._changed("persona.created", {"id": user_id})
        return user_id

    def delete_user(self, user_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from users where id = ?", [user_id])
            self._changed("persona.deleted", {"id": user_id})

    def get_user(self, user_id: int) -> dict | None:
        return self._one("select * from users where id = ?", [user_id])

    def update_user(self, user_id: int, fields: dict) -> None:
        with self.transaction():
            self._update("users", user_id, {**fields, "updated_at": now_iso()})
            self._changed("persona.changed", {"id": user_id, "fields": sorted(fields)})

    def companions_with_initiative(self) -> list[CompanionRow]:
        """The companions that turned writing first on."""
        rows = self._query("select * from companions where json_extract(initiative, '$.enabled') = 1 order by id")
        return [companion_row(row) for row in rows]
