"""Summaries of what left the prompt: when a block of a chat's messages drops out of the history
window, the local model writes a short summary of it, kept as a memory (source "summary").

The work runs on one background thread while the daemon is idle. It takes the model only when
no turn holds it, and a turn that arrives meanwhile stops it within one step (the model
lock preempts background work; the local model evaluates a summary's prompt a few tokens at a time,
see LlamaGenerator.generate_aside); the local model keeps what the interrupted summary had read
and written, and goes on from there the next time (other generators start it again). Where a
chat has been summarized to is kept in the database, so a restart resumes where it stopped. The
model's KV cache is saved before a summary and restored after, so the chat's prompt prefix
stays warm.
"""

from __future__ import annotations

import logging
import threading
import time

from companion.characters.companions import placeholder_names
from companion.chat.prompt import resolve_placeholders
from companion.chat.turns import TurnService
from companion.config import MemorySettings
from companion.memory.recall import LongTermMemory
from companion.model.generation import GenerationParams, GenerationRequest
from companion.store import Store
from companion.store.rows import MessageRow

log = logging.getLogger(__name__)

BUSY_WAIT = 5.0    # the longest wait for the model to be let go before looking again
UNAVAILABLE_WAIT = 1.0   # seconds between looks while no model is loaded (it is loading, or swapped)
MIN_IDLE = 0.05    # seconds of quiet before a summary, at the least

INSTRUCTION = ("Summarize this part of a conversation between {user} and {char} in at most three "
               "sentences. Keep names, facts, dates, plans and feelings. Write in the third person.")


def transcript(messages: list[MessageRow], char: str, user: str, speakers: dict[int, str] | None = None) -> str:
    """The messages as 'Name: text' lines, placeholders resolved; in a group chat each companion
    message is named after its speaker (speakers: names by companion id)."""
    def name(m: MessageRow) -> str:
        return (speakers or {}).get(m.get("companion_id"), char) if m["ai"] else user  # type: ignore[arg-type]
    return "\n".join(f"{name(m)}: {resolve_placeholders(m['text'], name(m), user)}" for m in messages)


class SummaryService:
    """Writes the summaries of blocks that left a chat's history window, while the daemon is idle."""

    def __init__(self, store: Store, memory: LongTermMemory, turns: TurnService,
                 options: MemorySettings) -> None:
        self.store = store
        self.memory = memory
        self.turns = turns
        self.options = options
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0           # summaries written since start
        self.interrupted = 0       # summaries a turn stopped

    def start(self) -> None:
        """Run in the background (when summaries are on), looking for work now and after each turn."""
        if not self.options.summaries or self._thread is not None:
            return
        self.turns.after_turn = self.wake
        self._thread = threading.Thread(target=self._loop, name="summaries", daemon=True)
        self._thread.start()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop the background thread (a summary being written is interrupted)."""
        self._closing.set()
        self._wake.set()
        self.turns.lock.stop_background()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(timeout=60)
            self._wake.clear()
            while not self._closing.is_set() and self.store.chats_to_summarize():
                if not self._idle():
                    continue
                try:
                    outcome = self.summarize_next()
                except Exception:
                    log.exception("summary failed; trying again after the next turn")
                    break
                if outcome == "none":
                    break
                if outcome == "busy":      # a turn or other background work holds the model: until it is let go
                    self.turns.lock.wait_idle(BUSY_WAIT)
                elif outcome == "unavailable":
                    self._closing.wait(UNAVAILABLE_WAIT)

    def _idle(self) -> bool:
        """Wait until no turn has run for summary_idle_seconds; False when woken by a turn."""
        if self._wake.wait(timeout=max(self.options.summary_idle_seconds, MIN_IDLE)):
            self._wake.clear()
            return False
        return not self._closing.is_set()

    def summarize_next(self) -> str:
        """Summarize the oldest block waiting: "written", "interrupted" (a turn took the model),
        "busy" (the model was in use), "unavailable" (no model), "gone" (the chat was deleted
        meanwhile: nothing written) or "none" (nothing to do)."""
        chats = self.store.chats_to_summarize()
        if not chats:
            return "none"
        chat_id = chats[0]
        messages = self.store.messages_to_summarize(chat_id, self.options.summary_block)
        if not messages:
            return "none"
        generator = self.turns.generator
        if generator.state != "ready":
            return "unavailable"
        chat = self.store.get_chat(chat_id)
        if chat is None:
            return "gone"     # deleted on another thread since chats_to_summarize
        char, user = placeholder_names(self.store, chat["companion_id"])
        speakers = None
        if chat["group_id"]:       # a group chat: every member by name (the summary is kept by the first)
            speakers = {c: placeholder_names(self.store, c)[0] for c in chat["members"]}
            char = ", ".join(speakers.values())
        stop = self.turns.lock.hold_for_background()
        if stop is None:
            return "busy"
        started = time.monotonic()
        try:
            request, count = self._request(generator, messages, char, user, speakers)
            generate = getattr(generator, "generate_aside", generator.generate)
            pieces: list[str] = []
            stream = generate(request, stop)
            try:
                for piece in stream:
                    pieces.append(piece)
            finally:
                stream.close()
            interrupted = stop.is_set()
        finally:
            self.turns.lock.release_background()
        text = "".join(pieces).strip()
        if interrupted:
            self.interrupted += 1
            log.info("summary of chat %s interrupted by a turn; going on later", chat_id)
            return "interrupted"
        covered = messages[:count]
        if not text:
            text = transcript(covered, "{{char}}", "{{user}}")[:2000]   # the model said nothing: keep the words
        with self.store.transaction():
            if self.store.get_chat(chat_id) is None:
                log.info("chat %s was deleted while its summary was written; the summary is dropped", chat_id)
                return "gone"
            row = self.store.add_memory(chat["companion_id"], text, "summary", created_at=covered[-1]["created_at"],
                                        covers=(chat_id, covered[0]["id"], covered[-1]["id"]))
            self.store.set_summarized_through(chat_id, covered[-1]["id"])
        self.memory.index_later([row])
        self.written += 1
        log.info("summary of chat %s messages %s-%s written in %.1f s", chat_id, covered[0]["id"],
                 covered[-1]["id"], time.monotonic() - started)
        return "written"

    def _request(self, generator, messages: list[MessageRow], char: str, user: str,
                 speakers: dict[int, str] | None = None) -> tuple[GenerationRequest, int]:
        """The summary request for as many of the messages as fit the context (one message is cut
        to fit); returns (request, how many messages it covers)."""
        count, cut = len(messages), None
        params = GenerationParams(max_tokens=self.options.summary_max_tokens, temperature=0.0, top_k=1, seed=1)
        budget = generator.n_ctx - self.options.summary_max_tokens
        while True:
            text = transcript(messages[:count], char, user, speakers)[:cut]
            chat_messages = [{"role": "system", "content": INSTRUCTION.format(user=user, char=char)},
                             {"role": "user", "content": text}]
            request = GenerationRequest(params, messages=chat_messages, char=char, user=user)
            if generator.prompt_tokens(request) <= budget:
                return request, count
            if count > 1:
                count = max(1, count // 2)
            else:
                cut = len(text) * 2 // 3
