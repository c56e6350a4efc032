"""Group chats' groups and their members."""

from __future__ import annotations

from companion.store.connection import Connection
from companion.store.times import now_iso


class GroupQueries(Connection):
    """Group chats' groups and their members: the queries."""

    def create_group(self, name: str, strategy: str, members: list[dict], preset_id: int | None = None) -> int:
        """A group with its members ({companion_id, muted, talkativeness}, in order) and a first chat."""
        now = now_iso()
        with self.transaction():
            group_id = self._insert("companion_groups", {"name": name, "strategy": strategy, "preset_id": preset_id,
                                                         "created_at": now, "updated_at": now})
            self._set_members(group_id, members)
            self._changed("group.created", {"id": group_id, "name": name})
            self.create_group_chat(group_id)
        return group_id

    def _set_members(self, group_id: int, members: list[dict]) -> None:
        self.db.execute("delete from group_members where group_id = ?", [group_id])
        for position, member in enumerate(members):
            self._insert("group_members", {"group_id": group_id, "companion_id": member["companion_id"],
                                           "position": position, "muted": int(bool(member.get("muted"))),
                                           "talkativeness": member.get("talkativeness")})

    def update_group(self, group_id: int, values: dict, members: list[dict] | None = None) -> None:
        """Change a group's name or strategy, and (given) its members, in its chats too."""
        with self.transaction() as db:
            self._update("companion_groups", group_id, {**values, "updated_at": now_iso()})
            if members is not None:
                self._set_members(group_id, members)
                first = members[0]["companion_id"]
                for chat in self._query("select id from chats where group_id = ?", [group_id]):
                    db.execute("update chats set companion_id = ? where id = ?", [first, chat["id"]])
                    db.execute("delete from chat_members where chat_id = ?", [chat["id"]])
                    for position, member in enumerate(members):
                        self._insert("chat_members", {"chat_id": chat["id"], "companion_id": member["companion_id"],
                                                      "position": position})
            self._changed("group.changed", {"id": group_id})

    def get_group(self, group_id: int) -> dict | None:
        """A group with its members in order ({companion_id, muted, talkativeness})."""
        row = self._one("select * from companion_groups where id = ?", [group_id])
        if row is None:
            return None
        row["members"] = [{"companion_id": m["companion_id"], "muted": bool(m["muted"]),
                           "talkativeness": m["talkativeness"]} for m in self._query(
            "select * from group_members where group_id = ? order by position", [group_id])]
        return row

    def list_groups(self, limit: int, offset: int) -> tuple[list[dict], int]:
        ids = [r["id"] for r in self._query("select id from companion_groups order by id limit ? offset ?",
                                             [limit, offset])]
        return [self.get_group(i) for i in ids], self.count("companion_groups")  # type: ignore[misc]

    def delete_group(self, group_id: int) -> None:
        """Delete a group and its chats (their messages go with them)."""
        with self.transaction() as db:
            db.execute("delete from companion_groups where id = ?", [group_id])
            self._changed("group.deleted", {"id": group_id})

    def set_group_chat(self, group_id: int, chat_id: int, replacing: int | None = None) -> None:
        """Make a chat its group's active chat (only where the active one is `replacing`, when given)."""
        sql, params = "update companion_groups set active_chat_id = ? where id = ?", [chat_id, group_id]
        if replacing is not None:
            sql, params = sql + " and active_chat_id = ?", params + [replacing]
        with self.transaction() as db:
            db.execute(sql, params)

    def groups_of(self, companion_id: int) -> list[dict]:
        """The groups a companion belongs to (id, name)."""
        return self._query("select g.id, g.name from companion_groups g join group_members m on m.group_id = g.id "
                           "where m.companion_id = ? order by g.id", [companion_id])

    def create_group_chat(self, group_id: int, title: str = "") -> int:
        """A new chat of a group, its members the group's, made the group's active chat."""
        with self.transaction():
            members = [m["companion_id"] for m in self._query(
                "select companion_id from group_members where group_id = ? order by position", [group_id])]
            chat_id = self._insert("chats", {"companion_id": members[0], "title": title, "created_at": now_iso(),
                                             "group_id": group_id})
            for position, companion_id in enumerate(members):
                self._insert("chat_members", {"chat_id": chat_id, "companion_id": companion_id, "position": position})
            self.set_group_chat(group_id, chat_id)
            self._changed("chat.created", {"id": chat_id, "companion_id": members[0], "group_id": group_id})
        return chat_id

    def update_chat(self, chat_id: int, values: dict) -> None:
        """Change a chat's title, story_so_far or story."""
        unknown = set(values) - {"title", "story_so_far", "story"}
        if unknown:
            raise KeyError(f"not chat fields: {sorted(unknown)}")
        with self.transaction():
            self._update("chats", chat_id, values)
            self._changed("chat.changed", {"id": chat_id, "fields": sorted(values)})
