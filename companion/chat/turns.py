"""Turns: the user's message, then the companion's reply generated with its memories.

A turn: the user's message is committed first (a crash never loses it), then memories are
recalled, the prompt is built and the reply generated while the turn holds the model
(model/lock.py); the reply and the exchange's memory are written after (streams.py).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from companion.characters.lorebooks import LorebookService
from companion.characters.presets import preset_settings
from companion.chat.chats import existing_chat
from companion.chat.prompt import (
    GroupMember,
    PromptInput,
    Recalled,
    fit_history,
    memories_text,
    note_text,
    resolve_placeholders,
    story_text,
    time_text,
    window_start,
    with_text_before_newest,
)
from companion.chat.streams import GroupStream, RawStream, RememberedStream, Reply, TurnPlan, TurnStream
from companion.chat.turn_input import exchange_text, history_turns, prompt_input, recall_query, said_in
from companion.config import Settings
from companion.errors import BadRequest, ModelUnavailable, NotAvailable, NotFound
from companion.events import Publish, no_events
from companion.formats.cards import char_name
from companion.memory.ranking import RecalledMemory
from companion.memory.recall import LongTermMemory
from companion.model.generation import GenerationParams, GenerationRequest, Generator
from companion.model.kv_states import ChatStates, StateFiles, common_prefix
from companion.model.lock import ModelLock
from companion.store import Store
from companion.store.rows import ChatRow, CompanionRow, MessageRow
from companion.store.times import utc_iso

log = logging.getLogger(__name__)

CLIENT_SOURCE = "client"      # a memory of an exchange a client sent with its own prompt (start_remembered)
CLIENT_RECALL_DEPTH = 500     # most memories recalled for a client's message before those it holds are left out


NEXT_NOTE = "\u27e6the next turn's note\u27e7"   # marks where a rehearsed prompt's known start ends


@dataclass(eq=False)
class Rehearsal(TurnPlan):
    """The next turn of a chat, built but not taken (TurnService.rehearse), with a stand-in for
    the message and the note nobody has written yet."""
    stand_in_note: str = ""


def as_told(memories: list[RecalledMemory]) -> list[Recalled]:
    """Recalled memories as a prompt tells them (RecalledMemory.told), with when they happened."""
    return [Recalled(m.told, m.created_at) for m in memories]


def group_member(companion: CompanionRow, user_name: str) -> GroupMember:
    """A member's stable part of a group prompt, its placeholders resolved to its own name."""
    name = char_name(companion)
    return GroupMember(name, resolve_placeholders(companion["persona"] or "", name, user_name),
                       resolve_placeholders(companion["personality"] or "", name, user_name))


class TurnService:
    """Generation in a chat (send, regenerate) and plain completions, one at a time."""

    def __init__(self, store: Store, memory: LongTermMemory, generator: Generator,
                 settings: Settings, lorebooks: LorebookService, publish: Publish = no_events) -> None:
        self.store = store
        self.lorebooks = lorebooks
        self.memory = memory
        self.generator = generator
        self.settings = settings
        self.lock = ModelLock(settings.server.queue_timeout)
        self.states = ChatStates(StateFiles(Path(settings.data_dir) / "kv_cache", settings.model.kv_cache_mb * 2**20),
                                 self.lock, lambda: self.generator, self.rehearse)
        self.after_turn: Callable[[], None] | None = None  # called after each stored reply (summaries wake)
        self.publish = publish                 # the live events: a generation started, ended
        self.generating: dict | None = None    # what the model generates now (what, chat_id, companion_id)
        self.clock: Callable[[], datetime] = self._local_now   # tests set a simulated one
        self.rehearsed_starts: dict[int, int] = {}   # chat id: the message its rehearsed window starts at

    # holding the model -------------------------------------------------------------------------

    def _acquire_model(self) -> None:
        """One generation at a time; 503 while a model is not ready, 429 while busy."""
        if self.generator.state == "loading":
            raise ModelUnavailable("the model is still loading", retry_after=5)
        if self.generator.state != "ready":
            raise ModelUnavailable(f"the model failed to load: {self.generator.error}", retry_after=60)
        if self.memory.embedder.state == "loading":
            raise ModelUnavailable("the embedding model is still loading", retry_after=5)
        self.lock.acquire()

    def replace_generator(self, generator: Generator) -> None:
        """Serve with another (loaded) generator from the next generation on."""
        with self.lock.held():
            self.generator = generator
            self.states.forget()

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        """The serving model's tokens of a text; 501 for a backend without a tokenizer here."""
        generator = self._ready_generator()
        if not hasattr(generator, "tokenize"):
            raise NotAvailable("the model runs on another server: its tokenizer is not available here")
        return generator.tokenize(text, add_special)

    def detokenize(self, tokens: list[int]) -> str:
        """The text of the serving model's token ids; 400 for ids outside its vocabulary."""
        generator = self._ready_generator()
        if not hasattr(generator, "detokenize"):
            raise NotAvailable("the model runs on another server: its tokenizer is not available here")
        size = generator.vocabulary_size() if hasattr(generator, "vocabulary_size") else None
        if size is not None and any(t >= size for t in tokens):
            raise BadRequest(f"token ids must be below the vocabulary size ({size})")
        return generator.detokenize(tokens)

    def _ready_generator(self) -> Generator:
        if self.generator.state == "loading":
            raise ModelUnavailable("the model is still loading", retry_after=5)
        if self.generator.state != "ready":
            raise ModelUnavailable(f"the model failed to load: {self.generator.error}", retry_after=60)
        return self.generator

    def abort(self) -> bool:
        """Stop the running generation after the current token; True when one was running."""
        return self.lock.abort()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no generation holds the model (its reply stored); False after the timeout."""
        return self.lock.wait_idle(timeout)

    # starting ----------------------------------------------------------------------------------

    def _params(self, companion: CompanionRow, overrides: dict | None,
                group_preset_id: int | None = None) -> GenerationParams:
        """Global defaults < the companion's preset < its own settings < the group's preset (in a
        group chat) < this request's overrides."""
        values = asdict(self.settings.generation)
        values.update(preset_settings(self.store, companion.get("preset_id")))
        values.update(companion.get("generation") or {})
        values.update(preset_settings(self.store, group_preset_id))
        values.update(overrides or {})
        params = GenerationParams(**values)
        if params.max_tokens >= self.generator.n_ctx:
            raise BadRequest(f"max_tokens must be below the context size ({self.generator.n_ctx})")
        return params

    def _chat(self, chat_id: int) -> tuple[CompanionRow, dict]:
        """(companion, user persona) of a chat; 404 when there is no such chat."""
        companion = self.store.get_companion(existing_chat(self.store, chat_id)["companion_id"])
        if companion is None:
            raise NotFound(f"no chat with id {chat_id}")
        user = self.store.get_user(self.store.active_user_id())
        assert user is not None        # the store always has an active persona
        return companion, user

    def start_send(self, chat_id: int, text: str, overrides: dict | None = None) -> TurnStream:
        """Store the user's message in a chat and hold the model for the reply; the stream generates it."""
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("prompt must be a non-empty string")
        self._chat(chat_id)          # 404 before taking the model
        self._acquire_model()
        try:
            companion, user = self._chat(chat_id)
            params = self._params(companion, overrides)
            self._check_fits(companion, user, text, params)
            user_message = self.store.add_message(chat_id, ai=False, text=text, speaker_id=user["id"],
                                                  created_at=utc_iso(self.now()))
            history = self.store.messages(chat_id)[:-1]
        except BaseException:
            self.lock.release()
            raise
        return TurnStream(self, companion, user, chat_id, history, user_message, None, params)

    def start_regenerate(self, chat_id: int, overrides: dict | None = None,
                         message_id: int | None = None) -> TurnStream:
        """Hold the model to generate a chat's last reply again, as a new swipe of it (or a missing
        reply to the last message). With message_id, that message must be the chat's last reply."""
        chat = existing_chat(self.store, chat_id)
        if chat["group_id"]:
            return self._start_group_regenerate(chat, overrides, message_id)
        self._acquire_model()
        try:
            companion, user = self._chat(chat_id)
            params = self._params(companion, overrides)
            rows = self.store.messages(chat_id)
            replaced = None
            if rows and rows[-1]["ai"] and not rows[-1]["greeting"]:
                replaced = rows.pop()
            if message_id is not None and (replaced is None or replaced["id"] != message_id):
                raise BadRequest("only the last reply of a chat can get another swipe")
            if not rows or rows[-1]["ai"]:
                raise BadRequest("there is no user message to reply to")
            user_message = rows.pop()
        except BaseException:
            self.lock.release()
            raise
        return TurnStream(self, companion, user, chat_id, rows, user_message, replaced, params)

    def start_initiative(self, chat_id: int, reason: str) -> TurnStream:
        """Hold the model for a message the companion writes first in a chat (reason: why, for the
        prompt); Busy (429) at once while another generation holds or wants the model."""
        self._chat(chat_id)
        if self.generator.state != "ready" or self.memory.embedder.state == "loading":
            raise ModelUnavailable("the model is not ready", retry_after=60)
        self.lock.acquire(wait=False)
        try:
            companion, user = self._chat(chat_id)
            params = self._params(companion, None)
            history = self.store.messages(chat_id)
        except BaseException:
            self.lock.release()
            raise
        return TurnStream(self, companion, user, chat_id, history, None, None, params, initiative=reason)

    def start_group(self, chat_id: int, text: str | None, speaker_ids: list[int],
                    overrides: dict | None = None) -> GroupStream:
        """Store the user's message (if any) in a group chat and hold the model for the members'
        replies, one after another (speaker_ids, in order)."""
        chat = existing_chat(self.store, chat_id)
        if not chat["group_id"]:
            raise BadRequest(f"chat {chat_id} is not a group chat")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise BadRequest("the message must be a non-empty string")
        group = [self.store.get_companion(c) for c in chat["members"]]
        speakers = [row for c in speaker_ids for row in group if row and row["id"] == c]
        preset_id = self._group_preset(chat)
        for companion in speakers:
            self._params(companion, overrides, preset_id)   # bad overrides: a 400 before anything is stored
        self._acquire_model()
        try:
            user = self.store.get_user(self.store.active_user_id())
            assert user is not None
            user_message = None
            if text is not None:
                user_message = self.store.add_message(chat_id, ai=False, text=text, speaker_id=user["id"],
                                                      created_at=utc_iso(self.now()))
        except BaseException:
            self.lock.release()
            raise
        return GroupStream(self, chat_id, user_message, speakers, [g for g in group if g], user, overrides, preset_id)

    def _group_preset(self, chat: ChatRow) -> int | None:
        """The preset a group chat's group uses, if any."""
        group = self.store.get_group(chat["group_id"]) if chat["group_id"] else None
        return group["preset_id"] if group else None

    def group_reply(self, stream: GroupStream, companion: CompanionRow) -> TurnStream:
        """The next member's reply of a group turn (the turn holds the model)."""
        return TurnStream(self, companion, stream.user, stream.chat_id, self.store.messages(stream.chat_id), None,
                          None, self._params(companion, stream.overrides, stream.preset_id), group=stream.group,
                          remembered_with=stream.user_message, owns_lock=False)

    def _start_group_regenerate(self, chat: ChatRow, overrides: dict | None, message_id: int | None) -> TurnStream:
        """Another swipe of a group chat's last reply, by the member who said it."""
        rows = self.store.messages(chat["id"])
        replaced = rows[-1] if rows and rows[-1]["ai"] and not rows[-1]["greeting"] else None
        if replaced is None or (message_id is not None and replaced["id"] != message_id):
            raise BadRequest("only the last reply of a chat can get another swipe")
        companion = self.store.get_companion(replaced["companion_id"] or chat["companion_id"])
        if companion is None:
            raise BadRequest("the companion who said that reply is gone")
        params = self._params(companion, overrides, self._group_preset(chat))
        group = [row for c in chat["members"] if (row := self.store.get_companion(c))]
        self._acquire_model()
        try:
            user = self.store.get_user(self.store.active_user_id())
            assert user is not None
            answered = next((m for m in reversed(rows[:-1]) if not m["ai"]), None)
        except BaseException:
            self.lock.release()
            raise
        return TurnStream(self, companion, user, chat["id"], rows[:-1], None, replaced, params, group=group,
                          remembered_with=answered)

    def start_raw(self, prompt: str | None = None, overrides: dict | None = None,
                  context_size: int | None = None, messages: list[dict] | None = None,
                  suffix: str | None = None) -> RawStream:
        """Hold the model for a plain completion of a prompt (with a suffix: the text between),
        or of chat messages as they are (nothing is stored); context_size, a client's own
        context limit, narrows the model's."""
        values = {**asdict(self.settings.generation), **(overrides or {})}
        request = GenerationRequest(GenerationParams(**values), messages=messages, prompt=prompt, suffix=suffix)
        limit = min(self.generator.n_ctx, context_size or self.generator.n_ctx)
        self._acquire_model()
        try:
            self.states.before_other_use()
            if self.generator.prompt_tokens(request) + request.params.max_tokens > limit:
                raise BadRequest(f"the prompt and max_tokens exceed the context size ({limit} tokens)")
        except BaseException:
            self.lock.release()
            raise
        return RawStream(self, request)

    def start_remembered(self, companion_id: int, messages: list[dict], overrides: dict | None = None,
                         context_size: int | None = None) -> RememberedStream:
        """Hold the model for a client's own chat messages (a frontend's prompt, as start_raw
        takes it) with a companion's long-term memory: what a turn would recall for the newest
        user message, less what the messages hold already, goes into a system message before it as a
        turn's prompt words it; the exchange is remembered when the reply ends (RememberedStream).
        Nothing else of the companion goes in: the client owns the prompt."""
        companion = self.store.get_companion(companion_id)
        if companion is None:
            raise NotFound(f"no companion with id {companion_id}")
        asked = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not asked.strip():
            raise BadRequest("remembering needs a user message with text")
        params = GenerationParams(**{**asdict(self.settings.generation), **(overrides or {})})
        limit = min(self.generator.n_ctx, context_size or self.generator.n_ctx)
        self._acquire_model()
        try:
            self.states.before_other_use()
            user = self.store.get_user(self.store.active_user_id())
            assert user is not None        # the store always has an active persona
            names = (char_name(companion), user["name"])
            memories = self._recall_for_client(companion, asked, messages, names)
            request = GenerationRequest(params, messages=messages)
            if memories:
                told = memories_text(as_told(memories), self.now())
                placed = with_text_before_newest(messages, resolve_placeholders(told, *names))
                with_them = GenerationRequest(params, messages=placed)
                if self.generator.prompt_tokens(with_them) + params.max_tokens <= limit:
                    request = with_them
                else:
                    memories = []          # they do not fit, as in a turn's prompt
            if self.generator.prompt_tokens(request) + params.max_tokens > limit:
                raise BadRequest(f"the prompt and max_tokens exceed the context size ({limit} tokens)")
        except BaseException:
            self.lock.release()
            raise
        return RememberedStream(self, request, companion_id, asked, memories)

    def _recall_for_client(self, companion: CompanionRow, asked: str, messages: list[dict],
                           names: tuple[str, str]) -> list[RecalledMemory]:
        """The companion's memories for a client's newest message, as a turn recalls them
        (long_term_mem of them, [memory]'s ranking), leaving out those already in the messages
        (their placeholders resolved)."""
        wanted = companion["long_term_mem"]
        if wanted <= 0 or self.memory.embedder.state != "ready":   # a failed embedder costs recall, not the reply
            return []
        self.memory.flush()
        found = self.memory.recall(companion["id"], asked, min(wanted + len(messages), CLIENT_RECALL_DEPTH))
        kept = [m for m in found if not said_in(m.text, messages, *names)][:wanted]
        for memory in kept:
            memory.text = resolve_placeholders(memory.text, *names)
        return kept

    def remember_exchange(self, companion_id: int, asked: str, reply: str) -> dict:
        """Remember a client's exchange (its user message and the reply) as one memory of the
        companion, as a turn remembers its exchange; embedded in the background."""
        row = self.store.add_memory(companion_id, exchange_text(asked, reply), CLIENT_SOURCE)
        self.memory.index_later([row])
        return row

    def send(self, chat_id: int, text: str, overrides: dict | None = None) -> Reply:
        """Store the user's message, generate the reply, remember the exchange."""
        return self.start_send(chat_id, text, overrides).run()

    def regenerate(self, chat_id: int, overrides: dict | None = None) -> Reply:
        """Generate a chat's last reply again."""
        return self.start_regenerate(chat_id, overrides).run()

    # the reply ---------------------------------------------------------------------------------

    def store_reply(self, turn: TurnStream, text: str) -> Reply:
        """Keep a generated reply (a new message, or a new chosen swipe of the replaced one) and
        the exchange's memory; the memory is embedded after the reply is answered."""
        companion, user = turn.companion, turn.user
        old_memories: list[int] = []
        row = None
        with self.store.transaction():
            if turn.replaced is not None:   # a new swipe of the same reply, chosen
                old_memories = [m["id"] for m in self.store.memories_of_messages([turn.replaced["id"]])]
                self.store.delete_memories(old_memories)
                swipes = turn.replaced["swipes"] or [turn.replaced["text"]]
                self.store.set_swipes(turn.replaced["id"], swipes + [text], len(swipes))
                reply = self.store.get_message(turn.replaced["id"])
                assert reply is not None    # it is in this transaction
            else:
                reply = self.store.add_message(turn.chat_id, ai=True, text=text, speaker_id=companion["id"],
                                               created_at=utc_iso(self.now()), initiated=turn.initiative is not None)
            answered = turn.user_message or turn.remembered_with
            if answered is not None:   # a message written first answers nobody: not an exchange
                covers = (turn.chat_id, answered["id"], reply["id"]) if turn.group else None   # the group chat
                row = self.store.add_memory(companion["id"], exchange_text(answered["text"], text),
                                            "exchange", answered["id"], reply["id"], covers=covers)
            self.store.set_context(reply["id"], [{"id": m.id, "score": m.score, "relevance": m.relevance}
                                                 for m in turn.memories], turn.lore)
            if turn.note is not None:   # a group's or a first message's note goes before the reply itself
                self.store.set_note(reply["id"], *turn.note)
        turn.message_id = reply["id"]
        self.memory.unindex(old_memories)
        if row is not None:
            self.memory.index_later([row])   # the reply is answered now; the embedding follows
        reply["text"] = resolve_placeholders(text, char_name(companion), user["name"])
        self.states.after_turn(turn.chat_id)
        if self.after_turn is not None:
            self.after_turn()
        return Reply(dict(reply), turn.memories, turn.lore, turn.memory_window)

    # the prompt --------------------------------------------------------------------------------

    def _prompt_input(self, companion: CompanionRow, user: dict, newest: str) -> PromptInput:
        tuning = None
        if companion["dialogue_tuning"]:
            example = self.store.latest_tuning_example(companion["id"])
            if example:
                tuning = (example["user_text"], example["ai_text"])
        p = prompt_input(companion, user, newest, tuning)
        p.time_refresh_minutes = self.settings.memory.time_refresh_minutes
        return p

    def _counter(self, companion: CompanionRow, user: dict) -> Callable[[list[dict]], int]:
        def count(messages: list[dict]) -> int:
            return self.generator.prompt_tokens(
                GenerationRequest(messages=messages, char=char_name(companion), user=user["name"]))
        return count

    def _lore(self, companion: CompanionRow, user: dict, newest: str,
              window: list[MessageRow]) -> list[tuple[dict, str]]:
        """Activate the companion's lorebooks on the newest messages: each entry as a reply's
        context says it (its content resolved) with its position."""
        names = (char_name(companion), user["name"])
        recent = [resolve_placeholders(m["text"], *names) for m in window]
        recent.append(resolve_placeholders(newest, *names))
        activated = self.lorebooks.activate(companion["id"], recent, self.generator.count_tokens,
                                            self.settings.lore.scan_depth, self.settings.lore.token_budget)
        return [({"lorebook_id": lorebook_id, "book": item.book_name, "entry": item.entry_index,
                  "comment": item.entry.comment, "reason": item.reason,
                  "content": resolve_placeholders(item.content, *names)}, item.position)
                for lorebook_id, item in activated]

    @staticmethod
    def _place_lore(p: PromptInput, activated: list[tuple[dict, str]], shown: set[tuple],
                    group: bool) -> list[dict]:
        """Fill the prompt's lore parts: constant lore in the system part (in a group chat, whose
        system part is the group's, in the speaker's note), the rest in this turn's note unless a
        note in the window shows it already (shown: (lorebook id, entry)); returns the entries the
        note shows."""
        before = [e for e, position in activated if e["reason"] == "constant" and position != "after_char"]
        after = [e for e, position in activated if e["reason"] == "constant" and position == "after_char"]
        triggered = [e for e, _ in activated if e["reason"] != "constant"]
        if group:
            before, after, triggered = [], [], before + after + triggered
        in_note = [e for e in triggered if (e["lorebook_id"], e["entry"]) not in shown]
        p.lore_before = [e["content"] for e in before]
        p.lore_after = [e["content"] for e in after]
        p.lore_triggered = [e["content"] for e in in_note]
        return in_note

    def _notes(self, message_ids: list[int]) -> dict[int, dict]:
        """The notes kept with these messages, less those showing a memory that is gone (forgotten
        memories are not told again)."""
        notes = self.store.notes(message_ids)
        shown = {m["id"] for note in notes.values() for m in note["memories"]}
        existing = {row["id"] for row in self.store.memories_by_ids(sorted(shown))}
        return {i: note for i, note in notes.items() if all(m["id"] in existing for m in note["memories"])}

    def _noted_memories(self, note: dict) -> list[RecalledMemory]:
        """The memories a kept note shows, as a turn reports them."""
        rows = {row["id"]: row for row in self.store.memories_by_ids([m["id"] for m in note["memories"]])}
        return [RecalledMemory(m["id"], rows[m["id"]]["text"], rows[m["id"]]["created_at"], m.get("score", 0.0),
                               m.get("relevance", 0.0)) for m in note["memories"] if m["id"] in rows]

    def _check_fits(self, companion: CompanionRow, user: dict, text: str, params: GenerationParams) -> None:
        """Refuse a prompt that cannot fit the context even with no history (nothing is stored)."""
        try:
            fit_history(self._prompt_input(companion, user, text), [], 0,
                        self._counter(companion, user), self.generator.n_ctx - params.max_tokens)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _speaker_names(self, history: list[MessageRow], companion: CompanionRow,
                       user: dict) -> tuple[dict[int, str], dict[int, str]]:
        """The names of everyone who speaks in a history: companions and personas by id."""
        companions = {companion["id"]: char_name(companion)}
        users = {user["id"]: user["name"]}
        for message in history:
            if message["ai"] and message["companion_id"] and message["companion_id"] not in companions:
                speaker = self.store.get_companion(message["companion_id"])
                companions[message["companion_id"]] = char_name(speaker) if speaker else ""
            elif not message["ai"] and message["user_id"] and message["user_id"] not in users:
                persona = self.store.get_user(message["user_id"])
                users[message["user_id"]] = persona["name"] if persona else ""
        return companions, users

    def rehearse(self, chat_id: int) -> list[int] | None:
        """The tokens a chat's next prompt will start with, up to its turn's note: built as the
        next turn will build it (the same window, lore and kept notes), with the last turn's
        message and note standing in for sizes nobody knows yet. What the model can read while
        the person writes; None when it cannot be told (a group chat, a model without tokens
        here, a chat gone or empty). The stand-in message is stored under no id: no note of its own."""
        chat = self.store.get_chat(chat_id)
        render = getattr(self.generator, "render", None)   # the local model's: a remote one keeps no cache here
        if chat is None or chat["group_id"] or render is None or not hasattr(self.generator, "tokenize"):
            return None
        companion, user = self._chat(chat_id)
        history = self.store.messages(chat_id)
        if not history:
            return None
        said = next((m for m in reversed(history) if not m["ai"]), None)   # None in a chat just opened
        kept = self.store.notes([said["id"]]).get(said["id"]) if said else None
        recalled = as_told(self._noted_memories(kept)) if kept else []
        now = self.now()     # the note's size: as many memories as the last one showed, and the time
        note = resolve_placeholders(     # resolved, as the prompt shows it, so that it is found there
            "\n\n".join(([memories_text(recalled, now)] if recalled else []) + [time_text(now, None)]),
            char_name(companion), user["name"])
        stand_in: MessageRow = {**(said or history[-1]), "id": -1, "text": said["text"] if said else ""}
        rehearsal = Rehearsal(companion, user, chat_id, history, stand_in, self._params(companion, None),
                              stand_in_note=NEXT_NOTE + "\n" + note)
        request = self.build_request(rehearsal)
        prompt, _ = render(request)
        end = prompt.find(NEXT_NOTE)
        if end < 0:      # the note did not fit: the next turn's prompt is not told
            return None
        start = self.generator.tokenize(prompt[:end], add_special=True)[:-1]   # the last may join what follows
        volatile = next(m["content"] for m in request.messages or [] if NEXT_NOTE in m["content"])
        if volatile.replace(rehearsal.stand_in_note, "").strip():
            return start     # lore or the card's post-history instructions: the turn has this message
        # else the next turn may have no note at all (nothing recalled, the time told lately): only
        # what the prompt with and without one share is known
        bare, _ = render(dataclasses.replace(
            request, messages=[m for m in request.messages or [] if NEXT_NOTE not in m["content"]]))
        return start[:common_prefix(start, self.generator.tokenize(bare, add_special=True))]

    def build_request(self, turn: TurnPlan) -> GenerationRequest:
        """Recall memories and build the prompt within the context budget; sets turn.memories.

        Every earlier message is either in the prompt's history window or recallable: recall
        leaves out only the messages of the window that is kept, and when the memories push
        the window's start later, recall runs again for the window that is left. Each history
        message shows the note its turn had before it; recall leaves out the memories those
        notes show, and lore they show is not repeated. This turn's note is kept with the
        user's message (else with the reply, stream.note); a swipe reuses the kept one. A
        rehearsal (the next turn, built while the person writes) recalls nothing, stores nothing
        and leaves the model's cache as it is."""
        rehearsal = isinstance(turn, Rehearsal)
        if not rehearsal:
            self.memory.flush()   # the last exchange's embedding first: it must not share the cores with the model
        companion, user, history = turn.companion, turn.user, turn.history
        newest = turn.user_message["text"] if turn.user_message else ""
        p = self._prompt_input(companion, user, newest)
        p.now = self.now()
        p.last_message_at = history[-1]["created_at"] if history else None
        p.initiative = turn.initiative or ""
        if turn.group:
            p.group = [group_member(row, user["name"]) for row in turn.group]
        query = recall_query(history, newest, turn.remembered_with["text"] if turn.remembered_with else "",
                             bool(turn.group))
        recall_count = max(1, companion["long_term_mem"]) if turn.initiative else companion["long_term_mem"]
        chat = self.store.get_chat(turn.chat_id)
        p.story = chat["story"] if chat and chat["story_so_far"] else None
        noted = turn.user_message or (turn.replaced if turn.group else None)   # this turn's note goes before it
        notes = self._notes([m["id"] for m in history] + ([noted["id"]] if noted else []))
        kept_note = notes.pop(noted["id"], None) if noted else None
        turns = history_turns(history, *self._speaker_names(history, companion, user),
                              {i: note["note"] for i, note in notes.items()})
        short_term = companion["short_term_mem"]
        count, budget = self._counter(companion, user), self.generator.n_ctx - turn.params.max_tokens
        recall_ready = self.memory.embedder.state == "ready"   # a failed embedder costs recall, not the reply
        # a rehearsal knows the lore the history triggers, not what the message to come will
        activated = self._lore(companion, user, "" if rehearsal else p.newest, history[-short_term:] if short_term else [])
        turn.lore = [entry for entry, _ in activated]
        window_id = chat["window_start_id"] if chat else None
        if not rehearsal and turn.replaced is None and turn.user_message is not None and kept_note is None:
            rehearsed = self.rehearsed_starts.pop(turn.chat_id, None)   # a new message: where the rehearsal
            if rehearsed is not None and rehearsed > (window_id or 0):   # started, if it fits (the prompt read
                window_id = rehearsed                                    # while the person wrote starts so)
        kept_from = next((i for i, m in enumerate(history) if m["id"] >= window_id), len(history)) if window_id else 0

        def fit() -> tuple[list[dict], int]:
            """The prompt within the budget; without the memories (and a kept note) when it does not
            fit with them."""
            try:
                return fit_history(p, turns, short_term, count, budget, kept_from)
            except ValueError:
                p.memories, p.note = [], None
            try:
                return fit_history(p, turns, short_term, count, budget, kept_from)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None

        def shown(start: int) -> tuple[set[int], set[tuple]]:
            """The memories and lore entries the notes of a window from start show."""
            in_window = [notes[m["id"]] for m in history[start:] if m["id"] in notes]
            return ({m["id"] for note in in_window for m in note["memories"]},
                    {(e.get("lorebook_id"), e.get("entry")) for note in in_window for e in note["lore"]})

        start = max(window_start(len(history), short_term), min(kept_from, len(history)))
        memories: list[RecalledMemory] = []
        if kept_note is not None:   # a swipe: the note of the message it answers, as it was
            p.note = kept_note["note"]
            memories = self._noted_memories(kept_note)
        for _ in range(3):
            shown_memories, shown_lore = shown(start)
            in_note = self._place_lore(p, activated, shown_lore, bool(turn.group))
            if isinstance(turn, Rehearsal):    # the note starts with that lore, as the turn's will
                p.note = "\n\n".join([*p.lore_triggered, turn.stand_in_note])
            if recall_ready and p.note is None:
                in_window = {m["id"] for m in history[start:]} | ({turn.user_message["id"]} if turn.user_message else set())
                memories = self.memory.recall(companion["id"], query, recall_count, exclude_message_ids=in_window)
                memories[:] = [m for m in memories if m.id not in shown_memories]   # shown already: not again
                turn.memory_window = memories.window.as_json() if memories.window else None
            if p.note is None:
                p.memories = as_told(memories)
            messages, first = fit()
            if first <= start or (not p.memories and shown(first) == (shown_memories, shown_lore)):
                break
            start = first
        first_kept = history[first]["id"] if first < len(history) else (
            turn.user_message["id"] if turn.user_message else None)
        if rehearsal:
            if first_kept is not None:
                self.rehearsed_starts[turn.chat_id] = first_kept
                if first_kept > (window_id or 0) and p.story is not None:   # as the turn will refresh it
                    p.story = self._refresh_story(turn.chat_id, keep=False)
                    messages, _ = fit()
            return GenerationRequest(turn.params, messages=messages, char=char_name(companion), user=user["name"])
        if first_kept is not None and self.store.set_window_start(turn.chat_id, first_kept) and p.story is not None:
            # the window dropped a block: the story so far is refreshed now, and only now
            p.story = self._refresh_story(turn.chat_id)
            messages, _ = fit()
        if p.note is None:      # a new note: kept with the message it goes before
            if not p.memories:
                memories = []          # they did not fit
            note = (note_text(p), [{"id": m.id, "score": m.score, "relevance": m.relevance} for m in memories],
                    in_note)
            if turn.user_message is not None:
                self.store.set_note(turn.user_message["id"], *note)
            else:
                turn.note = note
        for memory in memories:
            memory.text = resolve_placeholders(memory.text, char_name(companion), user["name"])
        turn.memories = list(memories)
        request = GenerationRequest(turn.params, messages=messages, char=char_name(companion), user=user["name"])
        self.states.before_turn(turn.chat_id, request)    # this chat's kept KV cache, if it helps
        return request

    def now(self) -> datetime:
        """Now, by this service's clock, in the person's timezone."""
        return self.clock()

    def _local_now(self) -> datetime:
        """Now, in the person's timezone ([server] timezone, else the machine's)."""
        name = self.settings.server.timezone
        return datetime.now(ZoneInfo(name)) if name else datetime.now(timezone.utc).astimezone()

    def _refresh_story(self, chat_id: int, keep: bool = True) -> str:
        """The chat's story so far, from its summaries up to now, kept with the chat (with keep)."""
        summaries = [row["text"] for row in self.store.chat_summaries(chat_id)]
        story = story_text(summaries, self.generator.count_tokens, self.settings.memory.story_token_budget)
        if keep:
            self.store.update_chat(chat_id, {"story": story})
        return story
