"""A chat's messages: read, edit, choose swipes, remove, clear, import and export them; what a
reply used; the dialogue-tuning examples taken from them. Every method names its chat or
message: which chat is "active" is the AI Companion dialect's business (api/compat.py)."""

from __future__ import annotations

import logging

from companion.characters.companions import placeholder_names
from companion.chat.chats import existing_chat
from companion.chat.prompt import resolve_placeholders
from companion.chat.turn_input import exchange_text, remembered
from companion.errors import BadRequest, NotFound
from companion.memory.recall import LongTermMemory
from companion.store import Store
from companion.store.rows import ChatRow, MessageRow

log = logging.getLogger(__name__)


class MessageService:
    """Messages of chats, and the memories made from them kept in step."""

    def __init__(self, store: Store, memory: LongTermMemory) -> None:
        self.store = store
        self.memory = memory

    def _chat(self, chat_id: int) -> ChatRow:
        return existing_chat(self.store, chat_id)

    def get(self, message_id: int) -> MessageRow:
        """A message as stored (404 when there is none)."""
        return self._message(message_id)

    def _message(self, message_id: int, chat_id: int | None = None) -> MessageRow:
        """A message; with chat_id, only one of that chat (else 404)."""
        message = self.store.get_message(message_id)
        if message is None or (chat_id is not None and message["chat_id"] != chat_id):
            raise NotFound(f"no message with id {message_id}")
        return message

    # reading ---------------------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[MessageRow]:
        """A chat's messages, oldest first, placeholders resolved for display."""
        names = placeholder_names(self.store, self._chat(chat_id)["companion_id"])
        rows = self.store.messages(chat_id)
        for row in rows:
            row["text"] = resolve_placeholders(row["text"], *names)
        return rows

    def export_messages(self, chat_id: int) -> list[dict]:
        """A chat as [{ai, text}] with texts as stored (re-importable)."""
        self._chat(chat_id)
        return [{"ai": row["ai"], "text": row["text"]} for row in self.store.messages(chat_id)]

    def context(self, message_id: int) -> dict:
        """What a reply used: the memories recalled for it (as they read now) and the lore."""
        message = self._message(message_id)
        context = self.store.get_context(message_id) or {"memories": [], "lore": []}
        names = placeholder_names(self.store, self._chat(message["chat_id"])["companion_id"])
        rows = {r["id"]: r for r in self.store.memories_by_ids([m["id"] for m in context["memories"]])}
        memories = []
        for used in context["memories"]:
            row = rows.get(used["id"])
            memories.append({**used, "text": resolve_placeholders(row["text"], *names) if row else None,
                             "deleted": row is None})
        return {"message_id": message_id, "memories": memories, "lore": context["lore"]}

    # editing ---------------------------------------------------------------------------------

    def edit_message(self, message_id: int, text: str, chat_id: int | None = None) -> None:
        """Change a message's text (its chosen swipe); the memory made from it is updated too.
        With chat_id, the message must be in that chat."""
        message = self._message(message_id, chat_id)
        with self.store.transaction():
            swipes = message["swipes"]
            if swipes:
                swipes[message["swipe_id"]] = text
                self.store.set_swipes(message_id, swipes, message["swipe_id"])
            else:
                self.store.set_message_text(message_id, text)
            rows = self._refresh_exchange_memories(message_id)
        self._index_quietly(rows)

    def choose_swipe(self, message_id: int, index: int) -> MessageRow:
        """Make one of a reply's swipes the chosen one; history, memory and exports follow it."""
        message = self._message(message_id)
        swipes = message["swipes"] or [message["text"]]
        if not 0 <= index < len(swipes):
            raise BadRequest(f"index must be between 0 and {len(swipes) - 1}")
        with self.store.transaction():
            self.store.set_swipes(message_id, swipes, index)
            rows = self._refresh_exchange_memories(message_id)
        self._index_quietly(rows)
        return self._message(message_id)

    def _refresh_exchange_memories(self, message_id: int) -> list[dict]:
        rows = []
        for row in self.store.memories_of_messages([message_id]):
            user_message = self.store.get_message(row["user_message_id"])
            reply = self.store.get_message(row["reply_message_id"])
            if user_message and reply:
                self.store.set_memory_text(row["id"], exchange_text(user_message["text"], reply["text"]))
                rows.append(self.store.get_memory(row["id"]))
        return [row for row in rows if row]

    def _index_quietly(self, rows: list[dict]) -> None:
        try:
            self.memory.index(rows)
        except Exception:
            log.exception("memories not indexed; the next indexing retries them")
            self.memory.missed(rows)

    def remove_message(self, message_id: int, chat_id: int | None = None) -> None:
        """Delete a message and the memory made from it. With chat_id, it must be in that chat."""
        self._message(message_id, chat_id)
        memory_ids = [m["id"] for m in self.store.memories_of_messages([message_id])]
        with self.store.transaction():
            self.store.delete_message(message_id)
            self.store.delete_memories(memory_ids)
        self.memory.unindex(memory_ids)

    def clear(self, chat_id: int) -> None:
        """Empty a chat (short-term memory); the first message opens it again."""
        self._chat(chat_id)
        with self.store.transaction():
            self.store.clear_chat(chat_id)
            self.store.add_greeting(chat_id)

    def import_messages(self, chat_id: int, items: list[tuple]) -> int:
        """Append messages, (ai, text) or (ai, text, date), to a chat and remember them, all or
        nothing; a message keeps its date (else now) and so does its exchange's memory."""
        companion_id = self._chat(chat_id)["companion_id"]
        with self.store.transaction():
            ids = self.store.add_messages(chat_id, items)
            if ids:
                self.store.set_summarized_through(chat_id, ids[-1])   # imported history is not summarized
            rows = [self.store.add_memory(companion_id, text, "import", user_id, reply_id, created_at=said_at)
                    for text, user_id, reply_id, said_at in remembered(self.store.messages_by_ids(ids))]
        self.memory.index_in_batches(rows, "imported messages")
        return len(ids)

    # dialogue tuning -------------------------------------------------------------------------

    def save_tuned_dialogue(self, chat_id: int) -> None:
        """Keep a chat's last exchange (user message, then reply) as an example to imitate."""
        companion_id = self._chat(chat_id)["companion_id"]
        last = self.store.messages(chat_id, limit=2)
        if len(last) < 2 or last[0]["ai"] or not last[1]["ai"]:
            raise BadRequest("the last two messages must be a user message and the companion's reply")
        self.store.add_tuning_example(companion_id, last[0]["text"], last[1]["text"])

    def clear_tuned_dialogue(self, companion_id: int) -> None:
        """Forget a companion's dialogue-tuning examples."""
        self.store.clear_tuning_examples(companion_id)
