"""The conversation service: send, regenerate, edit, remove, clear, import and export messages.

A turn: the user's message is committed first (a crash never loses it), then memories are
recalled, the prompt is built and the reply generated under the one-at-a-time lock; the
reply and the exchange's memory are written after.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .config import Settings
from .errors import BadRequest, Busy, CompanionError, ModelUnavailable, NotFound
from .llm import GenerationParams, Generator
from .memory import LongTermMemory, RecalledMemory
from .prompt import PromptInput, Recalled, Turn, fit_history, resolve_placeholders
from .store import Store

log = logging.getLogger(__name__)

IMPORT_BATCH = 256


@dataclass
class Reply:
    """A stored reply and the memories recalled for it."""
    message: dict
    memories: list[RecalledMemory]


def exchange_text(user_text: str, reply_text: str) -> str:
    """How one exchange is remembered; placeholders resolve when it is recalled."""
    return f"{{{{user}}}}: {user_text}\n{{{{char}}}}: {reply_text}"


class ChatService:
    """Conversations of the active companion, in its active chat."""

    def __init__(self, store: Store, memory: LongTermMemory, generator: Generator,
                 settings: Settings) -> None:
        self.store = store
        self.memory = memory
        self.generator = generator
        self.settings = settings
        self._turn_lock = threading.Lock()

    # context ---------------------------------------------------------------------------------

    def _active(self) -> tuple[dict, dict, int]:
        companion = self.store.get_companion(self.store.active_companion_id())
        user = self.store.get_user(self.store.active_user_id())
        return companion, user, self.store.active_chat_id(companion["id"])

    def _message_in_active_chat(self, message_id: int) -> dict:
        _, _, chat_id = self._active()
        message = self.store.get_message(message_id)
        if message is None or message["chat_id"] != chat_id:
            raise NotFound(f"no message with id {message_id}")
        return message

    # reading ---------------------------------------------------------------------------------

    def messages(self) -> list[dict]:
        """The active chat's messages, oldest first, placeholders resolved for display."""
        companion, user, chat_id = self._active()
        rows = self.store.messages(chat_id)
        for row in rows:
            row["text"] = resolve_placeholders(row["text"], companion["name"], user["name"])
        return rows

    def export_messages(self) -> list[dict]:
        """The active chat as [{ai, text}] with texts as stored (re-importable)."""
        _, _, chat_id = self._active()
        return [{"ai": bool(row["ai"]), "text": row["text"]} for row in self.store.messages(chat_id)]

    # turns -----------------------------------------------------------------------------------

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """One generating turn at a time; 503 while the model is not ready, 429 while busy."""
        if self.generator.state == "loading":
            raise ModelUnavailable("the model is still loading", retry_after=5)
        if self.generator.state != "ready":
            raise ModelUnavailable(f"the model failed to load: {self.generator.error}", retry_after=60)
        if self.memory.embedder.state == "loading":
            raise ModelUnavailable("the embedding model is still loading", retry_after=5)
        timeout = self.settings.server.queue_timeout
        acquired = self._turn_lock.acquire(timeout=timeout) if timeout > 0 else self._turn_lock.acquire(False)
        if not acquired:
            raise Busy("another reply is being generated; try again shortly", retry_after=2)
        try:
            yield
        finally:
            self._turn_lock.release()

    def send(self, prompt: str) -> Reply:
        """Store the user's message, generate the reply, remember the exchange."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt must be a non-empty string")
        with self._turn():
            companion, user, chat_id = self._active()
            self._check_fits(companion, user, prompt)
            user_message = self.store.add_message(chat_id, ai=False, text=prompt)
            history = self.store.messages(chat_id)[:-1]
            return self._reply(companion, user, chat_id, history, user_message, replaced=None)

    def regenerate(self) -> Reply:
        """Generate the last reply again (or a missing reply to the last user message)."""
        with self._turn():
            companion, user, chat_id = self._active()
            rows = self.store.messages(chat_id)
            replaced = None
            if rows and rows[-1]["ai"] and not rows[-1]["greeting"]:
                replaced = rows.pop()
            if not rows or rows[-1]["ai"]:
                raise BadRequest("there is no user message to reply to")
            user_message = rows.pop()
            return self._reply(companion, user, chat_id, rows, user_message, replaced)

    def _reply(self, companion: dict, user: dict, chat_id: int, history: list[dict],
               user_message: dict, replaced: dict | None) -> Reply:
        text, memories = self._generate(companion, user, history, user_message)
        with self.store.transaction():
            if replaced is not None:
                old_memories = [m["id"] for m in self.store.memories_of_messages([replaced["id"]])]
                self.store.delete_memories(old_memories)
                self.store.delete_message(replaced["id"])
            reply = self.store.add_message(chat_id, ai=True, text=text)
            row = self.store.add_memory(companion["id"], exchange_text(user_message["text"], text),
                                        "exchange", user_message["id"], reply["id"])
        if replaced is not None:
            self.memory.unindex(old_memories)
        try:
            self.memory.index([row])
        except Exception:
            log.exception("memory %s stored but not indexed; the next start indexes it", row["id"])
        reply["text"] = resolve_placeholders(text, companion["name"], user["name"])
        return Reply(reply, memories)

    def _prompt_input(self, companion: dict, user: dict, newest: str) -> PromptInput:
        tuning = None
        if companion["dialogue_tuning"]:
            example = self.store.latest_tuning_example(companion["id"])
            if example:
                tuning = (example["user_text"], example["ai_text"])
        return PromptInput(
            char=companion["name"], user=user["name"], persona=companion["persona"],
            personality=companion["personality"] or "", scenario=companion["scenario"] or "",
            user_persona=user["persona"], example_dialogue=companion["example_dialogue"],
            roleplay=bool(companion["roleplay"]), tuning_example=tuning, newest=newest)

    def _counter(self, companion: dict, user: dict):
        def count(messages: list[dict]) -> int:
            return self.generator.count_tokens(
                self.generator.render(messages, companion["name"], user["name"])[0])
        return count

    def _budget(self) -> int:
        return self.generator.n_ctx - self.settings.generation.max_tokens

    def _check_fits(self, companion: dict, user: dict, prompt: str) -> None:
        """Refuse a prompt that cannot fit the context even with no history (nothing is stored)."""
        try:
            fit_history(self._prompt_input(companion, user, prompt), [], 0,
                        self._counter(companion, user), self._budget())
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _generate(self, companion: dict, user: dict, history: list[dict],
                  user_message: dict) -> tuple[str, list[RecalledMemory]]:
        """Recall, build the prompt within the context budget, generate; returns (text, memories)."""
        params = GenerationParams.from_settings(self.settings.generation)
        prompt_input = self._prompt_input(companion, user, user_message["text"])
        turns = [Turn(bool(m["ai"]), m["text"]) for m in history]
        short_term = companion["short_term_mem"]
        window_ids = {m["id"] for m in history[-short_term:]} if short_term else set()
        memories: list[RecalledMemory] = []
        if self.memory.embedder.state == "ready":  # a failed embedder costs recall, not the reply
            memories = self.memory.recall(
                companion["id"], user_message["text"], companion["long_term_mem"],
                self.settings.memory.min_relevance, window_ids | {user_message["id"]})
        prompt_input.memories = [Recalled(m.text, m.created_at) for m in memories]
        count, budget = self._counter(companion, user), self._budget()
        try:
            messages, _ = fit_history(prompt_input, turns, short_term, count, budget)
        except ValueError:
            prompt_input.memories, memories = [], []
            try:
                messages, _ = fit_history(prompt_input, turns, short_term, count, budget)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        prompt, stops = self.generator.render(messages, companion["name"], user["name"])
        params.stop = stops + list(params.stop)
        try:
            text = "".join(self.generator.generate(prompt, params)).strip()
        except CompanionError:
            raise
        except Exception as exc:
            log.exception("generation failed")
            raise CompanionError(f"generation failed: {exc}") from exc
        return text, memories

    # editing ---------------------------------------------------------------------------------

    def edit_message(self, message_id: int, text: str) -> None:
        """Change a message's text; the memory made from it is updated too."""
        self._message_in_active_chat(message_id)
        with self.store.transaction():
            self.store.set_message_text(message_id, text)
            rows = self._refresh_exchange_memories(message_id)
        try:
            self.memory.index(rows)
        except Exception:
            log.exception("edited memories not indexed; the next start indexes them")

    def _refresh_exchange_memories(self, message_id: int) -> list[dict]:
        rows = []
        for row in self.store.memories_of_messages([message_id]):
            user_message = self.store.get_message(row["user_message_id"])
            reply = self.store.get_message(row["reply_message_id"])
            if user_message and reply:
                self.store.set_memory_text(row["id"], exchange_text(user_message["text"], reply["text"]))
                rows.append(self.store.get_memory(row["id"]))
        return rows

    def remove_message(self, message_id: int) -> None:
        """Delete a message and the memory made from it."""
        self._message_in_active_chat(message_id)
        memory_ids = [m["id"] for m in self.store.memories_of_messages([message_id])]
        with self.store.transaction():
            self.store.delete_message(message_id)
            self.store.delete_memories(memory_ids)
        self.memory.unindex(memory_ids)

    def clear(self) -> None:
        """Empty the active chat (short-term memory); the first message opens it again."""
        _, _, chat_id = self._active()
        with self.store.transaction():
            self.store.clear_chat(chat_id)
            self.store.add_greeting(chat_id)

    def import_messages(self, items: list[tuple[bool, str]]) -> int:
        """Append messages to the active chat and remember them, all or nothing."""
        companion, _, chat_id = self._active()
        with self.store.transaction():
            ids = self.store.add_messages(chat_id, items)
            rows = []
            i = 0
            while i < len(items):
                ai, text = items[i]
                if not ai and i + 1 < len(items) and items[i + 1][0]:
                    memory_text = exchange_text(text, items[i + 1][1])
                    pair = (ids[i], ids[i + 1])
                    i += 2
                else:
                    memory_text = f"{{{{{'char' if ai else 'user'}}}}}: {text}"
                    pair = (None, ids[i]) if ai else (ids[i], None)
                    i += 1
                rows.append(self.store.add_memory(companion["id"], memory_text, "import", *pair))
        for start in range(0, len(rows), IMPORT_BATCH):
            try:
                self.memory.index(rows[start:start + IMPORT_BATCH])
            except Exception:
                log.exception("imported memories not indexed; the next start indexes them")
                break
            log.info("imported messages: indexed %d of %d memories",
                     min(start + IMPORT_BATCH, len(rows)), len(rows))
        return len(ids)

    # dialogue tuning and long-term memory ----------------------------------------------------

    def save_tuned_dialogue(self) -> None:
        """Keep the last exchange (user message, then reply) as an example to imitate."""
        companion, _, chat_id = self._active()
        last = self.store.messages(chat_id, limit=2)
        if len(last) < 2 or last[0]["ai"] or not last[1]["ai"]:
            raise BadRequest("the last two messages must be a user message and the companion's reply")
        self.store.add_tuning_example(companion["id"], last[0]["text"], last[1]["text"])

    def clear_tuned_dialogue(self) -> None:
        companion, _, _ = self._active()
        self.store.clear_tuning_examples(companion["id"])

    def add_memory(self, text: str) -> dict:
        """Add custom text to the active companion's long-term memory."""
        companion, _, _ = self._active()
        return self.memory.add(companion["id"], text, "custom")

    def erase_memory(self) -> int:
        """Forget the active companion's whole long-term memory."""
        companion, _, _ = self._active()
        return self.memory.erase(companion["id"])
