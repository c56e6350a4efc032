"""The conversation service: send, regenerate, edit, remove, clear, import and export messages.

A turn: the user's message is committed first (a crash never loses it), then memories are
recalled, the prompt is built and the reply generated under the one-at-a-time lock; the
reply and the exchange's memory are written after.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from .config import Settings
from .errors import BadRequest, Busy, CompanionError, ModelUnavailable, NotFound
from .generation import GenerationParams, GenerationRequest, Generator
from .lorebooks import LorebookService
from .memory import LongTermMemory, RecalledMemory
from .prompt import PromptInput, Recalled, Turn, fit_history, resolve_placeholders, story_text, window_start
from .store import MessageRow, Store

log = logging.getLogger(__name__)

PREEMPT_WAIT = 30.0   # seconds a turn waits for background work to stop (it stops within one token)


@dataclass
class Reply:
    """A stored reply, the memories recalled for it and the lore entries that went in."""
    message: dict
    memories: list[RecalledMemory]
    lore: list[dict] = field(default_factory=list)
    memory_window: dict | None = None    # the time window the prompt named ("yesterday"), if any


def placeholder_names(store: Store, companion_id: int) -> tuple[str, str]:
    """What {{char}} and {{user}} stand for in a companion's texts: its name, the active persona's."""
    companion = store.get_companion(companion_id)
    if companion is None:
        raise NotFound(f"no companion with id {companion_id}")
    return char_name(companion), store.get_user(store.active_user_id())["name"]


def char_name(companion: dict) -> str:
    """What {{char}} stands for: the card's nickname when it has one, else the name."""
    return (companion.get("card") or {}).get("nickname") or companion["name"]


def exchange_text(user_text: str, reply_text: str) -> str:
    """How one exchange is remembered; placeholders resolve when it is recalled."""
    return f"{{{{user}}}}: {user_text}\n{{{{char}}}}: {reply_text}"


def remembered(messages: list[dict]) -> list[tuple[str, int | None, int | None, str]]:
    """How stored messages are remembered when a history is imported, as in a live chat: a user
    message and the reply after it as one exchange, a user message without a reply on its own,
    and a companion's message that answers nobody (a greeting) not at all; as (memory text, user
    message id, reply id, when it was said)."""
    out = []
    for i, message in enumerate(messages):
        if message["ai"]:
            continue
        following = messages[i + 1] if i + 1 < len(messages) else None
        if following is not None and following["ai"]:
            out.append((exchange_text(message["text"], following["text"]), message["id"], following["id"],
                        message["created_at"]))
        else:
            out.append((f"{{{{user}}}}: {message['text']}", message["id"], None, message["created_at"]))
    return out


class ChatService:
    """Conversations of the active companion, in its active chat."""

    def __init__(self, store: Store, memory: LongTermMemory, generator: Generator,
                 settings: Settings, lorebooks: LorebookService) -> None:
        self.store = store
        self.lorebooks = lorebooks
        self.memory = memory
        self.generator = generator
        self.settings = settings
        self._turn_lock = threading.Lock()
        self._running: threading.Event | None = None
        self._background: threading.Event | None = None   # the stop event of background work holding the model
        self._waiting = 0                                   # turns waiting for the model
        self._waiting_lock = threading.Lock()
        self.after_turn: Callable[[], None] | None = None  # called after each stored reply (summaries wake)

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
            row["text"] = resolve_placeholders(row["text"], char_name(companion), user["name"])
        return rows

    def names(self, companion_id: int) -> tuple[str, str]:
        """What {{char}} and {{user}} stand for in a companion's texts."""
        return placeholder_names(self.store, companion_id)

    def export_messages(self) -> list[dict]:
        """The active chat as [{ai, text}] with texts as stored (re-importable)."""
        _, _, chat_id = self._active()
        return [{"ai": row["ai"], "text": row["text"]} for row in self.store.messages(chat_id)]

    # turns -----------------------------------------------------------------------------------

    def _acquire_model(self) -> None:
        """One generating turn at a time; 503 while a model is not ready, 429 while busy."""
        if self.generator.state == "loading":
            raise ModelUnavailable("the model is still loading", retry_after=5)
        if self.generator.state != "ready":
            raise ModelUnavailable(f"the model failed to load: {self.generator.error}", retry_after=60)
        if self.memory.embedder.state == "loading":
            raise ModelUnavailable("the embedding model is still loading", retry_after=5)
        timeout = self.settings.server.queue_timeout
        acquired = self._turn_lock.acquire(False)
        if not acquired:
            with self._waiting_lock:
                self._waiting += 1            # background work does not take the model before us
            try:
                background = self._background
                if background is not None:     # a summary: it stops within one step
                    background.set()
                wait = max(timeout, PREEMPT_WAIT if background is not None else 0.0)
                acquired = wait > 0 and self._turn_lock.acquire(timeout=wait)
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
        if not acquired:
            raise Busy("another reply is being generated; try again shortly", retry_after=2)

    def hold_for_background(self) -> threading.Event | None:
        """Take the model for background work (a summary) when no turn holds it; returns the
        event that asks it to stop (a turn sets it), or None when the model is busy."""
        if self._waiting or not self._turn_lock.acquire(False):
            return None
        if self._waiting:               # a turn came between the check and the lock: it goes first
            self._turn_lock.release()
            return None
        self._background = threading.Event()
        return self._background

    def release_background(self) -> None:
        """Give back the model taken by hold_for_background."""
        self._background = None
        self._turn_lock.release()

    def _params(self, companion: dict, overrides: dict | None) -> GenerationParams:
        """Global defaults < the companion's own settings < this request's overrides."""
        values = asdict(self.settings.generation)
        values.update(companion.get("generation") or {})
        values.update(overrides or {})
        params = GenerationParams(**values)
        if params.max_tokens >= self.generator.n_ctx:
            raise BadRequest(f"max_tokens must be below the context size ({self.generator.n_ctx})")
        return params

    def _chat(self, chat_id: int | None = None, companion_id: int | None = None) -> tuple[dict, dict, int]:
        """(companion, user, chat id) of a chat, of a companion's active chat, or of the active one."""
        user = self.store.get_user(self.store.active_user_id())
        if chat_id is not None:
            chat = self.store.get_chat(chat_id)
            if chat is None:
                raise NotFound(f"no chat with id {chat_id}")
            return self.store.get_companion(chat["companion_id"]), user, chat_id
        if companion_id is not None:
            companion = self.store.get_companion(companion_id)
            if companion is None:
                raise NotFound(f"no companion with id {companion_id}")
            return companion, user, self.store.active_chat_id(companion_id)
        return self._active()

    def start_send(self, prompt: str, overrides: dict | None = None, companion_id: int | None = None,
                   chat_id: int | None = None) -> "TurnStream":
        """Store the user's message and hold the model for the reply; the stream generates it.

        In the active chat, the active chat of companion_id, or the chat chat_id."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt must be a non-empty string")
        self._chat(chat_id, companion_id)          # 404 before taking the model
        self._acquire_model()
        try:
            companion, user, chat_id = self._chat(chat_id, companion_id)
            params = self._params(companion, overrides)
            self._check_fits(companion, user, prompt, params)
            user_message = self.store.add_message(chat_id, ai=False, text=prompt)
            history = self.store.messages(chat_id)[:-1]
        except BaseException:
            self._turn_lock.release()
            raise
        return TurnStream(self, companion, user, chat_id, history, user_message, None, params)

    def start_regenerate(self, overrides: dict | None = None, message_id: int | None = None) -> "TurnStream":
        """Hold the model to generate the last reply again, as a new swipe of it (or a missing
        reply to the last message). With message_id, that message must be its chat's last reply."""
        chat_id = None
        if message_id is not None:
            message = self.store.get_message(message_id)
            if message is None:
                raise NotFound(f"no message with id {message_id}")
            chat_id = message["chat_id"]
        self._acquire_model()
        try:
            companion, user, chat_id = self._chat(chat_id)
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
            self._turn_lock.release()
            raise
        return TurnStream(self, companion, user, chat_id, rows, user_message, replaced, params)

    def start_raw(self, prompt: str | None = None, overrides: dict | None = None,
                  context_size: int | None = None, messages: list[dict] | None = None) -> "RawStream":
        """Hold the model for a plain completion of a prompt, or of chat messages as they are
        (nothing is stored); context_size, a client's own context limit, narrows the model's."""
        values = {**asdict(self.settings.generation), **(overrides or {})}
        request = GenerationRequest(GenerationParams(**values), messages=messages, prompt=prompt)
        limit = min(self.generator.n_ctx, context_size or self.generator.n_ctx)
        self._acquire_model()
        try:
            if self.generator.prompt_tokens(request) + request.params.max_tokens > limit:
                raise BadRequest(f"the prompt and max_tokens exceed the context size ({limit} tokens)")
        except BaseException:
            self._turn_lock.release()
            raise
        return RawStream(self, request)

    def send(self, prompt: str, overrides: dict | None = None) -> Reply:
        """Store the user's message, generate the reply, remember the exchange."""
        return self.start_send(prompt, overrides).run()

    def regenerate(self, overrides: dict | None = None) -> Reply:
        """Generate the last reply again."""
        return self.start_regenerate(overrides).run()

    def replace_generator(self, generator: Generator) -> None:
        """Serve with another (loaded) generator from the next turn on."""
        with self._turn_lock:
            self.generator = generator

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no turn holds the model (its reply stored); False after the timeout."""
        if self._turn_lock.acquire(timeout=timeout):
            self._turn_lock.release()
            return True
        return False

    def abort(self) -> bool:
        """Stop the running generation after the current token; True when one was running."""
        stop = self._running
        if stop is None:
            return False
        stop.set()
        return True

    def _store_reply(self, turn: "TurnStream", text: str) -> Reply:
        companion, user = turn.companion, turn.user
        old_memories: list[int] = []
        with self.store.transaction():
            if turn.replaced is not None:   # a new swipe of the same reply, chosen
                old_memories = [m["id"] for m in self.store.memories_of_messages([turn.replaced["id"]])]
                self.store.delete_memories(old_memories)
                swipes = turn.replaced["swipes"] or [turn.replaced["text"]]
                self.store.set_swipes(turn.replaced["id"], swipes + [text], len(swipes))
                reply = self.store.get_message(turn.replaced["id"])
            else:
                reply = self.store.add_message(turn.chat_id, ai=True, text=text)
            row = self.store.add_memory(companion["id"], exchange_text(turn.user_message["text"], text),
                                        "exchange", turn.user_message["id"], reply["id"])
            self.store.set_context(reply["id"], [{"id": m.id, "score": m.score, "relevance": m.relevance}
                                                 for m in turn.memories], turn.lore)
        self.memory.unindex(old_memories)
        self.memory.index_later([row])   # the reply is answered now; the embedding follows
        reply["text"] = resolve_placeholders(text, char_name(companion), user["name"])
        if self.after_turn is not None:
            self.after_turn()
        return Reply(reply, turn.memories, turn.lore, turn.memory_window)

    def _prompt_input(self, companion: dict, user: dict, newest: str) -> PromptInput:
        tuning = None
        if companion["dialogue_tuning"]:
            example = self.store.latest_tuning_example(companion["id"])
            if example:
                tuning = (example["user_text"], example["ai_text"])
        card = companion.get("card") or {}
        return PromptInput(
            char=char_name(companion), user=user["name"], persona=companion["persona"],
            personality=companion["personality"] or "", scenario=companion["scenario"] or "",
            user_persona=user["persona"], example_dialogue=companion["example_dialogue"],
            roleplay=bool(companion["roleplay"]), tuning_example=tuning, newest=newest,
            system_prompt=card.get("system_prompt") or "",
            post_history_instructions=card.get("post_history_instructions") or "")

    def _counter(self, companion: dict, user: dict) -> Callable[[list[dict]], int]:
        def count(messages: list[dict]) -> int:
            return self.generator.prompt_tokens(
                GenerationRequest(messages=messages, char=char_name(companion), user=user["name"]))
        return count

    def _lore(self, companion: dict, user: dict, prompt_input: PromptInput, window: list[dict]) -> list[dict]:
        """Activate the companion's lorebooks on the newest messages; fills the prompt's lore parts."""
        names = (char_name(companion), user["name"])
        recent = [resolve_placeholders(m["text"], *names) for m in window]
        recent.append(resolve_placeholders(prompt_input.newest, *names))
        activated = self.lorebooks.activate(companion["id"], recent, self.generator.count_tokens,
                                            self.settings.lore.scan_depth, self.settings.lore.token_budget)
        used = []
        for lorebook_id, item in activated:
            text = resolve_placeholders(item.content, *names)
            if item.reason == "constant":
                (prompt_input.lore_after if item.position == "after_char" else prompt_input.lore_before).append(text)
            else:
                prompt_input.lore_triggered.append(text)
            used.append({"lorebook_id": lorebook_id, "book": item.book_name, "entry": item.entry_index,
                         "comment": item.entry.comment, "reason": item.reason, "content": text})
        return used

    def _check_fits(self, companion: dict, user: dict, prompt: str, params: GenerationParams) -> None:
        """Refuse a prompt that cannot fit the context even with no history (nothing is stored)."""
        try:
            fit_history(self._prompt_input(companion, user, prompt), [], 0,
                        self._counter(companion, user), self.generator.n_ctx - params.max_tokens)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _build_prompt(self, turn: "TurnStream") -> GenerationRequest:
        """Recall memories and build the prompt within the context budget; sets turn.memories.

        Every earlier message is either in the prompt's history window or recallable: recall
        leaves out only the messages of the window that is kept, and when the memories push
        the window's start later, recall runs again for the window that is left."""
        self.memory.flush()   # the last exchange's embedding first: it must not share the cores with the model
        companion, user, history = turn.companion, turn.user, turn.history
        prompt_input = self._prompt_input(companion, user, turn.user_message["text"])
        chat = self.store.get_chat(turn.chat_id)
        prompt_input.story = chat["story"] if chat["story_so_far"] else None
        turns = self._turns(history, companion, user)
        short_term = companion["short_term_mem"]
        count, budget = self._counter(companion, user), self.generator.n_ctx - turn.params.max_tokens
        recall_ready = self.memory.embedder.state == "ready"   # a failed embedder costs recall, not the reply
        turn.lore = self._lore(companion, user, prompt_input, history[-short_term:] if short_term else [])

        def fit() -> tuple[list[dict], int]:
            """The prompt within the budget; without the memories when it does not fit with them."""
            try:
                return fit_history(prompt_input, turns, short_term, count, budget)
            except ValueError:
                prompt_input.memories = []
            try:
                return fit_history(prompt_input, turns, short_term, count, budget)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None

        start = window_start(len(history), short_term)
        memories: list[RecalledMemory] = []
        for _ in range(3):
            if recall_ready:
                in_window = {m["id"] for m in history[start:]} | {turn.user_message["id"]}
                memories = self.memory.recall(companion["id"], turn.user_message["text"],
                                              companion["long_term_mem"], exclude_message_ids=in_window)
                turn.memory_window = memories.window.as_json() if memories.window else None
            prompt_input.memories = [Recalled(m.text, m.created_at) for m in memories]
            messages, kept_from = fit()
            if kept_from <= start or not prompt_input.memories:
                break
            start = kept_from
        first_kept = history[kept_from]["id"] if kept_from < len(history) else turn.user_message["id"]
        if self.store.set_window_start(turn.chat_id, first_kept) and prompt_input.story is not None:
            # the window dropped a block: the story so far is refreshed now, and only now
            prompt_input.story = self._refresh_story(turn.chat_id, companion)
            messages, _ = fit()
        if not prompt_input.memories:
            memories = []          # they did not fit
        for memory in memories:
            memory.text = resolve_placeholders(memory.text, char_name(companion), user["name"])
        turn.memories = list(memories)
        return GenerationRequest(turn.params, messages=messages, char=char_name(companion), user=user["name"])

    def _turns(self, history: list[MessageRow], companion: dict, user: dict) -> list[Turn]:
        """The history as prompt turns, each named after its speaker (a companion or a persona)."""
        companions = {companion["id"]: char_name(companion)}
        users = {user["id"]: user["name"]}
        turns = []
        for message in history:
            if message["ai"]:
                speaker_id, names, lookup = message["companion_id"], companions, self.store.get_companion
            else:
                speaker_id, names, lookup = message["user_id"], users, self.store.get_user
            if speaker_id is not None and speaker_id not in names:
                row = lookup(speaker_id)
                names[speaker_id] = (char_name(row) if message["ai"] else row["name"]) if row else ""
            turns.append(Turn(message["ai"], message["text"], names.get(speaker_id, "") if speaker_id else ""))
        return turns

    def _refresh_story(self, chat_id: int, companion: dict) -> str:
        """The chat's story so far, from its summaries up to now, kept with the chat."""
        summaries = [row["text"] for row in self.store.chat_summaries(chat_id)]
        story = story_text(summaries, self.generator.count_tokens, self.settings.memory.story_token_budget)
        self.store.update_chat(chat_id, {"story": story})
        return story

    def new_chat(self, companion_id: int, title: str = "", greeting_index: int = 0) -> dict:
        """Open a new chat for a companion, greeting with its first message (0) or one of its
        alternate greetings (1..n), and make it the companion's active chat."""
        companion = self.store.get_companion(companion_id)
        if companion is None:
            raise NotFound(f"no companion with id {companion_id}")
        greetings = [companion["first_message"]] + list((companion.get("card") or {}).get("alternate_greetings") or [])
        if not 0 <= greeting_index < len(greetings):
            raise BadRequest(f"greeting_index must be between 0 and {len(greetings) - 1}")
        chat_id = self.store.create_chat(companion_id, title, greetings[greeting_index])
        return self.store.get_chat(chat_id)

    def context(self, message_id: int) -> dict:
        """What a reply used: the memories recalled for it (as they read now) and the lore."""
        message = self.store.get_message(message_id)
        if message is None:
            raise NotFound(f"no message with id {message_id}")
        context = self.store.get_context(message_id) or {"memories": [], "lore": []}
        chat = self.store.get_chat(message["chat_id"])
        companion = self.store.get_companion(chat["companion_id"])
        user = self.store.get_user(self.store.active_user_id())
        rows = {r["id"]: r for r in self.store.memories_by_ids([m["id"] for m in context["memories"]])}
        memories = []
        for used in context["memories"]:
            row = rows.get(used["id"])
            memories.append({**used, "text": resolve_placeholders(row["text"], char_name(companion), user["name"])
                             if row else None, "deleted": row is None})
        return {"message_id": message_id, "memories": memories, "lore": context["lore"]}

    # editing ---------------------------------------------------------------------------------

    def _message(self, message_id: int, active_only: bool) -> dict:
        if active_only:
            return self._message_in_active_chat(message_id)
        message = self.store.get_message(message_id)
        if message is None:
            raise NotFound(f"no message with id {message_id}")
        return message

    def edit_message(self, message_id: int, text: str, active_only: bool = True) -> None:
        """Change a message's text (its chosen swipe); the memory made from it is updated too."""
        message = self._message(message_id, active_only)
        with self.store.transaction():
            swipes = message["swipes"]
            if swipes:
                swipes[message["swipe_id"]] = text
                self.store.set_swipes(message_id, swipes, message["swipe_id"])
            else:
                self.store.set_message_text(message_id, text)
            rows = self._refresh_exchange_memories(message_id)
        self._index_quietly(rows)

    def _refresh_exchange_memories(self, message_id: int) -> list[dict]:
        rows = []
        for row in self.store.memories_of_messages([message_id]):
            user_message = self.store.get_message(row["user_message_id"])
            reply = self.store.get_message(row["reply_message_id"])
            if user_message and reply:
                self.store.set_memory_text(row["id"], exchange_text(user_message["text"], reply["text"]))
                rows.append(self.store.get_memory(row["id"]))
        return rows

    def choose_swipe(self, message_id: int, index: int) -> dict:
        """Make one of a reply's swipes the chosen one; history, memory and exports follow it."""
        message = self.store.get_message(message_id)
        if message is None:
            raise NotFound(f"no message with id {message_id}")
        swipes = message["swipes"] or [message["text"]]
        if not 0 <= index < len(swipes):
            raise BadRequest(f"index must be between 0 and {len(swipes) - 1}")
        with self.store.transaction():
            self.store.set_swipes(message_id, swipes, index)
            rows = self._refresh_exchange_memories(message_id)
        self._index_quietly(rows)
        return self.store.get_message(message_id)

    def _index_quietly(self, rows: list[dict]) -> None:
        try:
            self.memory.index(rows)
        except Exception:
            log.exception("memories not indexed; the next start indexes them")

    def remove_message(self, message_id: int, active_only: bool = True) -> None:
        """Delete a message and the memory made from it."""
        self._message(message_id, active_only)
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

    def import_messages(self, items: list[tuple]) -> int:
        """Append messages, (ai, text) or (ai, text, date), to the active chat and remember them,
        all or nothing; a message keeps its date (else now) and so does its exchange's memory."""
        companion, _, chat_id = self._active()
        with self.store.transaction():
            ids = self.store.add_messages(chat_id, items)
            if ids:
                self.store.set_summarized_through(chat_id, ids[-1])   # imported history is not summarized
            rows = [self.store.add_memory(companion["id"], text, "import", user_id, reply_id, created_at=said_at)
                    for text, user_id, reply_id, said_at in remembered(self.store.messages_by_ids(ids))]
        self.memory.index_in_batches(rows, "imported messages")
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


class ReplyTrimmer:
    """Trims a streamed reply on the fly: the pieces it lets out add up to the stripped text.

    Leading whitespace is dropped; trailing whitespace is held back until more text follows.
    """

    def __init__(self) -> None:
        self.started = False
        self.held = ""
        self.text = ""

    def feed(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return ""
            self.started = True
        pending = self.held + piece
        out = pending.rstrip()
        self.held = pending[len(out):]
        self.text += out
        return out


class ModelHold:
    """Holds the model (the one-at-a-time lock) from start_* until released; abortable."""

    def __init__(self, chat: ChatService, params: GenerationParams) -> None:
        self.chat = chat
        self.params = params
        self.request: GenerationRequest | None = None   # what the model was given
        self.text = ""      # what it has generated so far
        self.stop = threading.Event()
        self._held = True
        self._started = False
        chat._running = self.stop

    def _release(self) -> None:
        if self._held:
            self._held = False
            if self.chat._running is self.stop:
                self.chat._running = None
            self.chat._turn_lock.release()

    def close(self) -> None:
        """Let go of the model if the events were never generated."""
        if not self._started:
            self._release()

    def usage(self) -> dict:
        """Token counts of the prompt and the completion so far."""
        prompt = self.chat.generator.prompt_tokens(self.request) if self.request else 0
        completion = max(0, self.chat.generator.count_tokens(self.text) - 1) if self.text else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _generate(self, request: GenerationRequest) -> Iterator[str]:
        """The generator's pieces; an unexpected failure becomes a CompanionError (a 500 with a reason)."""
        stream = self.chat.generator.generate(request, self.stop)
        try:
            yield from stream
        except CompanionError:
            raise
        except Exception as exc:
            log.exception("generation failed")
            raise CompanionError(f"generation failed: {exc}") from exc
        finally:
            stream.close()


class RawStream(ModelHold):
    """A plain completion holding the model: pieces() streams the text; nothing is stored."""

    def __init__(self, chat: ChatService, request: GenerationRequest) -> None:
        super().__init__(chat, request.params)
        self.request = request

    def pieces(self) -> Iterator[str]:
        self._started = True
        stream = None
        try:
            stream = self._generate(self.request)
            for piece in stream:
                self.text += piece
                yield piece
        except GeneratorExit:
            self.stop.set()
            raise
        finally:
            if stream is not None:
                stream.close()
            self._release()


class TurnStream(ModelHold):
    """A started turn holding the model: iterate events() to generate, or close() to let go.

    events() yields ("token", text) pieces and finally ("done", Reply). Aborting (abort(), or
    closing the stream mid-way as a disconnected client does) keeps the partial reply.
    """

    def __init__(self, chat: ChatService, companion: dict, user: dict, chat_id: int,
                 history: list[dict], user_message: dict, replaced: dict | None,
                 params: GenerationParams) -> None:
        super().__init__(chat, params)
        self.companion, self.user, self.chat_id = companion, user, chat_id
        self.history, self.user_message, self.replaced = history, user_message, replaced
        self.memories: list[RecalledMemory] = []
        self.memory_window: dict | None = None
        self.lore: list[dict] = []

    def events(self) -> Iterator[tuple[str, object]]:
        """Generate: token pieces as they come, then the stored reply."""
        self._started = True
        trimmer = ReplyTrimmer()
        pieces = None
        try:
            self.request = self.chat._build_prompt(self)
            pieces = self._generate(self.request)
            try:
                for piece in pieces:
                    out = trimmer.feed(piece)
                    if out:
                        yield "token", out
            except GeneratorExit:  # the client went away: stop, keep what was said
                self.stop.set()
                pieces.close()
                if trimmer.text:
                    self.chat._store_reply(self, trimmer.text)
                raise
            pieces.close()
            self.text = trimmer.text
            reply = self.chat._store_reply(self, trimmer.text)
            self._release()
            yield "done", reply
        finally:
            if pieces is not None:
                pieces.close()
            self._release()

    def run(self) -> Reply:
        """Generate to the end and return the stored reply."""
        for kind, value in self.events():
            if kind == "done":
                return value  # type: ignore[return-value]
        raise CompanionError("generation ended without a reply")
