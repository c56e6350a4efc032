"""The chats service: several chats per companion; list, rename, delete, activate, export, import, search."""

from __future__ import annotations

import logging
from typing import Callable, List

from companion.characters.companions import placeholder_names
from companion.chat.prompt import resolve_placeholders
from companion.chat.turn_input import exchange_text, remembered
from companion.errors import BadRequest, Conflict, NotFound
from companion.formats.chat_files import ChatLine, export_chat, parse_chat
from companion.formats.dates import parse_date
from companion.memory.recall import LongTermMemory
from companion.store import Store
from companion.store.rows import ChatRow, MessageRow

log = logging.getLogger(__name__)


def existing_chat(store: Store, chat_id: int) -> ChatRow:
    """A chat (NotFound when there is none)."""
    chat = store.get_chat(chat_id)
    if chat is None:
        raise NotFound(f"no chat with id {chat_id}")
    return chat


class ChatsService:
    """Chats and their messages, beyond the active chat the AI Companion API talks in."""

    def __init__(self, store: Store, memory: LongTermMemory | None) -> None:
        """memory: None to read chats only (`companion export`); deleting and importing need it."""
        self.store = store
        self.memory = memory
        self.opened: Callable[[int], None] | None = None   # told a new chat's id (the model reads its start)
        self.chats_deleted: Callable[[list[int]], None] | None = None   # told deleted chats' ids (their model states go)

    def get(self, chat_id: int) -> ChatRow:
        return existing_chat(self.store, chat_id)

    def create(self, companion_id: int, title: str = "", greeting_index: int = 0) -> ChatRow:
        """Open a new chat for a companion, greeting with its first message (0) or one of its
        alternate greetings (1..n), and make it the companion's active chat."""
        companion = self.store.get_companion(companion_id)
        if companion is None:
            raise NotFound(f"no companion with id {companion_id}")
        greetings = [companion["first_message"]] + list((companion.get("card") or {}).get("alternate_greetings") or [])
        if not 0 <= greeting_index < len(greetings):
            raise BadRequest(f"greeting_index must be between 0 and {len(greetings) - 1}")
        chat = self.get(self.store.create_chat(companion_id, title, greetings[greeting_index]))
        if self.opened is not None:
            self.opened(chat["id"])
        return chat

    def describe(self, chat: ChatRow) -> dict:
        group_id = chat.get("group_id")
        if group_id:
            group = self.store.get_group(group_id)
            return {**chat, "active": group is not None and group["active_chat_id"] == chat["id"]
                    and self.store.get_state("active_group_id") == str(group_id)}
        companion = self.store.get_companion(chat["companion_id"])
        assert companion is not None   # a chat's (deleting a companion deletes its chats)
        return {**chat, "active": companion["active_chat_id"] == chat["id"]
                and self.store.active_companion_id() == companion["id"]
                and not self.store.get_state("active_group_id")}

    def list(self, companion_id: int | None, limit: int, offset: int) -> tuple[list[dict], int]:
        if companion_id is not None and self.store.get_companion(companion_id) is None:
            raise NotFound(f"no companion with id {companion_id}")
        rows, total = self.store.list_chats(companion_id, limit, offset)
        return [self.describe(r) for r in rows], total

    def change(self, chat_id: int, title: str | None = None, story_so_far: bool | None = None) -> dict:
        """Rename a chat and/or turn its "story so far" on or off (None leaves it as it is)."""
        self.get(chat_id)
        values: dict = {}
        if title is not None:
            values["title"] = title
        if story_so_far is not None:
            values["story_so_far"] = int(story_so_far)
        if values:
            self.store.update_chat(chat_id, values)
        return self.describe(self.get(chat_id))

    def delete(self, chat_id: int) -> None:
        """Delete a chat, its messages and the memories made from them (not the last chat)."""
        chat = self.get(chat_id)
        if self.store.list_chats(chat["companion_id"], 1, 0, group_id=chat["group_id"])[1] <= 1:
            raise Conflict("the last chat of a companion or group cannot be deleted; clear it instead")
        message_ids = [m["id"] for m in self.store.messages(chat_id)]
        memory_ids = [m["id"] for m in self.store.memories_of_messages(message_ids)]
        memory_ids += [m["id"] for m in self.store.chat_summaries(chat_id)]
        with self.store.transaction():
            self.store.delete_memories(memory_ids)
            self.store.delete_chat(chat_id)
            companion = self.store.get_companion(chat["companion_id"])
            assert companion is not None   # a chat's (deleting a companion deletes its chats)
            if chat["group_id"]:
                newest = self.store.list_chats(None, 1, 0, group_id=chat["group_id"])[0][0]
                self.store.set_group_chat(chat["group_id"], newest["id"], replacing=chat_id)
            elif companion["active_chat_id"] == chat_id:
                newest = self.store.list_chats(chat["companion_id"], 1, 0)[0][0]
                self.store.update_companion(chat["companion_id"], {"active_chat_id": newest["id"]})
        assert self.memory is not None   # read-only without one (__init__)
        self.memory.unindex(memory_ids)
        if self.chats_deleted is not None:
            self.chats_deleted([chat_id])

    def activate(self, chat_id: int) -> dict:
        """Make a chat its companion's active chat, and its companion the active companion."""
        chat = self.get(chat_id)
        with self.store.transaction():
            if chat["group_id"]:
                self.store.set_group_chat(chat["group_id"], chat_id)
                self.store.set_state("active_group_id", chat["group_id"])
            else:
                self.store.update_companion(chat["companion_id"], {"active_chat_id": chat_id})
                self.store.set_state("active_companion_id", chat["companion_id"])
                self.store.set_state("active_group_id", "")
        return self.describe(self.get(chat_id))

    def messages(self, chat_id: int, limit: int, offset: int) -> tuple[List[MessageRow], int]:
        """A page of a chat's messages, oldest first, placeholders resolved, swipes included."""
        chat = self.get(chat_id)
        names = self._names(chat)
        rows = self.store.page_messages(chat_id, limit, offset)
        for row in rows:
            row["text"] = resolve_placeholders(row["text"], *names)
            row["swipes"] = [resolve_placeholders(t, *names) for t in row["swipes"]] or [row["text"]]
        return rows, self.store.count_messages(chat_id)

    def _speaker_name(self, companion_id: int | None, user_id: int | None) -> str:
        """Who said a message: its companion's or persona's name ("" when unknown)."""
        if companion_id is not None:
            companion = self.store.get_companion(companion_id)
            return companion["name"] if companion else ""
        persona = self.store.get_user(user_id) if user_id is not None else None
        return persona["name"] if persona else ""

    def _names(self, chat: ChatRow) -> tuple[str, str]:
        return placeholder_names(self.store, chat["companion_id"])

    def export(self, chat_id: int, fmt: str) -> str:
        chat = self.get(chat_id)
        char, user = self._names(chat)
        messages = self.store.messages(chat_id)
        personas: dict[int | None, dict | None] = {
            i: self.store.get_user(i) for i in {m["user_id"] for m in messages if m["user_id"]}}
        lines = [ChatLine(m["ai"], resolve_placeholders(m["text"], char, user),
                          [resolve_placeholders(t, char, user) for t in m["swipes"]],
                          m["swipe_id"], m["created_at"],
                          name=self._speaker_name(m["companion_id"], None) if chat["group_id"] and m["ai"]
                          else (personas.get(m["user_id"]) or {}).get("name", ""))
                 for m in messages]
        return export_chat(fmt, chat, char, user, lines)

    def import_file(self, data: bytes, companion_id: int) -> dict:
        """A new chat for a companion from a chat file, its exchanges remembered; all or nothing."""
        if self.store.get_companion(companion_id) is None:
            raise NotFound(f"no companion with id {companion_id}")
        title, lines = parse_chat(data)
        if not lines:
            raise BadRequest("the chat file has no messages")
        with self.store.transaction():
            chat_id = self.store.create_chat(companion_id, title or "imported", greeting="")
            ids = []
            dates = [parse_date(line.date) for line in lines]
            for line, date in zip(lines, dates):
                message = self.store.add_message(chat_id, line.ai, line.text, created_at=date)
                if line.swipes:
                    self.store.set_swipes(message["id"], line.swipes, line.swipe_id)
                    if line.swipes[line.swipe_id] != line.text:   # the chosen text wins
                        self.store.set_message_text(message["id"], line.text)
                ids.append(message["id"])
            self.store.set_summarized_through(chat_id, ids[-1])   # imported history is not summarized
            rows = [self.store.add_memory(companion_id, text, "import", user_id, reply_id, created_at=said_at)
                    for text, user_id, reply_id, said_at in remembered(self.store.messages_by_ids(ids))]
        assert self.memory is not None   # read-only without one (__init__)
        self.memory.index_in_batches(rows, f"imported chat {chat_id}")
        return self.describe(self.get(chat_id))

    def import_group_file(self, data: bytes, group: dict) -> dict:
        """A new chat of a group from a SillyTavern group chat (.jsonl: each message names its
        speaker); every member remembers the exchanges it took part in. All or nothing."""
        title, lines = parse_chat(data)
        if not lines:
            raise BadRequest("the chat file has no messages")
        members = {}
        for member in group["members"]:
            row = self.store.get_companion(member["companion_id"])
            if row:
                for alias in {row["name"], (row.get("card") or {}).get("nickname") or row["name"]}:
                    members[alias.casefold()] = row["id"]
        strangers = sorted({line.name for line in lines if line.ai and line.name.casefold() not in members})
        if strangers:
            raise BadRequest(f"the chat names speakers that are not members of the group: {', '.join(strangers)}")
        with self.store.transaction():
            chat_id = self.store.create_group_chat(group["id"], title or "imported")
            rows, answered = [], None
            for line in lines:
                speaker = members[line.name.casefold()] if line.ai else None
                message = self.store.add_message(chat_id, line.ai, line.text, created_at=parse_date(line.date),
                                                 speaker_id=speaker)
                if line.swipes:
                    self.store.set_swipes(message["id"], line.swipes, line.swipe_id)
                    if line.swipes[line.swipe_id] != line.text:
                        self.store.set_message_text(message["id"], line.text)
                if not line.ai:
                    answered = message
                elif answered is not None:
                    assert speaker is not None   # an ai line's: a member's (strangers were refused above)
                    rows.append(self.store.add_memory(
                        speaker, exchange_text(answered["text"], line.text), "import", answered["id"],
                        message["id"], created_at=message["created_at"], covers=(chat_id, answered["id"], message["id"])))
            self.store.set_summarized_through(chat_id, message["id"])
        assert self.memory is not None   # read-only without one (__init__)
        self.memory.index_in_batches(rows, f"imported group chat {chat_id}")
        return self.describe(self.get(chat_id))

    def search(self, query: str, companion_id: int | None, chat_id: int | None,
               limit: int, offset: int) -> tuple[List[dict], int]:
        """Full-text search over every message, ranked, with a highlighted snippet."""
        words = [w for w in query.replace('"', " ").split() if w]
        if not words:
            raise BadRequest("q must contain a word to search for")
        fts_query = " ".join(f'"{w}"' for w in words)
        rows, total = self.store.search_messages(fts_query, companion_id, chat_id, limit, offset)
        names: dict[int, tuple[str, str]] = {}
        for row in rows:
            if row["companion_id"] not in names:
                names[row["companion_id"]] = placeholder_names(self.store, row["companion_id"])
            for key in ("text", "snippet"):   # as the chat shows them
                row[key] = resolve_placeholders(row[key], *names[row["companion_id"]])
            row["rank"] = round(row["rank"], 4)
            row["speaker"] = self._speaker_name(row.pop("speaker_companion_id"), row.pop("speaker_user_id"))
        return rows, total
