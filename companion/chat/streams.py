"""A generation holding the model: a turn of a chat (stored) or a plain completion (not).

start_* in turns.py takes the model and returns one of these; iterating it generates, and the
model is given back when it ends, fails, is aborted or is closed without being iterated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator as Stream
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from companion.errors import CompanionError
from companion.memory.ranking import RecalledMemory
from companion.model.generation import GenerationParams, GenerationRequest
from companion.store.rows import CompanionRow, MessageRow

if TYPE_CHECKING:
    from companion.chat.turns import TurnService

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """A stored reply, the memories recalled for it and the lore entries that went in."""
    message: dict
    memories: list[RecalledMemory]
    lore: list[dict] = field(default_factory=list)
    memory_window: dict | None = None    # the time window the prompt named ("yesterday"), if any


@dataclass(eq=False)
class TurnPlan:
    """What TurnService.build_request reads of a turn (the companion, the person, the chat, the
    history before it, the message it answers or the reply it replaces, a group's members) and
    what it writes back (the memories recalled, the lore activated, a new note to keep)."""
    companion: CompanionRow
    user: dict
    chat_id: int
    history: list[MessageRow]
    user_message: MessageRow | None
    params: GenerationParams
    replaced: MessageRow | None = None
    initiative: str | None = None           # the companion writes first: why, for the prompt
    group: list[CompanionRow] | None = None  # a group chat: its members, in order
    remembered_with: MessageRow | None = None   # in a group: the user's message this reply is remembered with
    memories: list[RecalledMemory] = field(default_factory=list)
    memory_window: dict | None = None
    lore: list[dict] = field(default_factory=list)
    note: tuple[str, list[dict], list[dict]] | None = None   # a new note kept with the reply


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
    """Holds the model (the one-at-a-time lock) from start_* until released; abortable.

    The live events hear when it starts and how it ends (finished, or aborted: stopped, failed
    or let go before generating), with the chat and the speaker; never its tokens."""

    def __init__(self, turns: "TurnService", params: GenerationParams, what: str = "completion",
                 chat_id: int | None = None, speaker_id: int | None = None, owns_lock: bool = True) -> None:
        self.turns = turns
        self.params = params
        self.request: GenerationRequest | None = None   # what the model was given
        self.text = ""      # what it has generated so far
        self.stop = threading.Event()
        self._held = True
        self._started = False
        self.finished = False               # generated to the end (not stopped, not failed)
        self.message_id: int | None = None  # the stored reply, once there is one
        self.about = {"what": what, "chat_id": chat_id, "companion_id": speaker_id}
        self.owns_lock = owns_lock          # False: one reply of a group turn, which holds the model
        turns.lock.running(self.stop)
        turns.generating = self.about
        turns.publish("generation.started", self.about)

    def _release(self) -> None:
        if self._held:
            self._held = False
            if not self.owns_lock:    # one reply of a group turn: the turn tells when it ends
                return
            self.turns.generating = None
            self.turns.lock.release()
            outcome = "finished" if self.finished and not self.stop.is_set() else "aborted"
            self.turns.publish(f"generation.{outcome}", {**self.about, "message_id": self.message_id})

    def close(self) -> None:
        """Let go of the model if the events were never generated."""
        if not self._started:
            self._release()

    def usage(self) -> dict:
        """Token counts of the prompt and the completion so far."""
        generator = self.turns.generator
        prompt = generator.prompt_tokens(self.request) if self.request else 0
        completion = max(0, generator.count_tokens(self.text) - 1) if self.text else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _generate(self, request: GenerationRequest) -> Stream[str, None, None]:
        """The generator's pieces; an unexpected failure becomes a CompanionError (a 500 with a reason)."""
        stream = self.turns.generator.generate(request, self.stop)
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

    def __init__(self, turns: "TurnService", request: GenerationRequest, companion_id: int | None = None) -> None:
        super().__init__(turns, request.params, speaker_id=companion_id)
        self.request = request

    def pieces(self) -> Iterator[str]:
        self._started = True
        stream = None
        try:
            stream = self._generate(self.request)   # type: ignore[arg-type]
            for piece in stream:
                self.text += piece
                yield piece
            self.finished = True
        except GeneratorExit:
            self.stop.set()
            raise
        finally:
            if stream is not None:
                stream.close()
            self._release()


class RememberedStream(RawStream):
    """A client's own chat messages with a companion's long-term memories put in, holding the
    model (TurnService.start_remembered): pieces() streams the reply as a plain completion does;
    when it ends, or the client goes away after some of it (the partial reply, as a turn keeps
    it), the newest user message and the reply are remembered as one exchange of the companion.
    Nothing is remembered when generation fails or nothing was generated."""

    def __init__(self, turns: "TurnService", request: GenerationRequest, companion_id: int, asked: str,
                 memories: list[RecalledMemory]) -> None:
        super().__init__(turns, request, companion_id)
        self.companion_id = companion_id
        self.asked = asked                  # the newest user message, as the client sent it
        self.memories = memories            # what was put in, best first
        self.remembered: dict | None = None     # the exchange's memory row, once stored

    def pieces(self) -> Iterator[str]:
        stream = super().pieces()
        try:
            yield from stream
        except GeneratorExit:
            self._remember()
            raise
        self._remember()

    def _remember(self) -> None:
        reply = self.text.strip()
        if self.remembered is not None or not reply:
            return
        try:
            self.remembered = self.turns.remember_exchange(self.companion_id, self.asked, reply)
        except Exception:      # the reply is answered already: say so in the log, not to the client
            log.exception("the exchange for companion %s was not remembered", self.companion_id)


class TurnStream(ModelHold, TurnPlan):
    """A started turn holding the model: iterate events() to generate, or close() to let go.

    events() yields ("token", text) pieces and finally ("done", Reply). Aborting (abort(), or
    closing the stream mid-way as a disconnected client does) keeps the partial reply.
    Without a user message, the companion writes first (initiative: why, for the prompt).
    """

    def __init__(self, turns: "TurnService", companion: CompanionRow, user: dict, chat_id: int,
                 history: list[MessageRow], user_message: MessageRow | None, replaced: MessageRow | None,
                 params: GenerationParams, initiative: str | None = None, group: list[CompanionRow] | None = None,
                 remembered_with: MessageRow | None = None, owns_lock: bool = True) -> None:
        what = "initiative" if initiative else "swipe" if replaced is not None else "reply"
        TurnPlan.__init__(self, companion, user, chat_id, history, user_message, params, replaced, initiative,
                          group, remembered_with)
        ModelHold.__init__(self, turns, params, what, chat_id, companion["id"], owns_lock)

    def events(self) -> Stream[tuple[str, object], None, None]:
        """Generate: token pieces as they come, then the stored reply."""
        self._started = True
        trimmer = ReplyTrimmer()
        pieces = None
        try:
            self.request = self.turns.build_request(self)
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
                    self.turns.store_reply(self, trimmer.text)
                raise
            pieces.close()
            self.text = trimmer.text
            reply = self.turns.store_reply(self, trimmer.text)
            self.finished = True
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


class GroupStream:
    """A group turn holding the model: the user's message (if any), then one reply after another
    from the members chosen, each seeing the shared history. events() yields ("speaker", row),
    ("token", text) and ("reply", Reply) for each, then ("done", [Reply, ...]). Aborting stops
    the reply being generated (its partial text is kept) and the rest of the turn."""

    def __init__(self, turns: "TurnService", chat_id: int, user_message: MessageRow | None,
                 speakers: list[CompanionRow], group: list[CompanionRow], user: dict,
                 overrides: dict | None, preset_id: int | None = None) -> None:
        self.turns, self.chat_id, self.user_message = turns, chat_id, user_message
        self.speakers, self.group, self.user, self.overrides = speakers, group, user, overrides
        self.preset_id = preset_id      # the group's generation preset, if it has one
        self.replies: list[Reply] = []
        self._held = True
        self._current: TurnStream | None = None

    def _release(self) -> None:
        """Give the model back, and tell the live events the turn ended (each reply told when it
        started, with its speaker; clients see one generation from the first reply to the end)."""
        if self._held:
            self._held = False
            self.turns.generating = None
            self.turns.lock.release()
            stopped = self._current is not None and self._current.stop.is_set()
            self.turns.publish(f"generation.{'aborted' if stopped else 'finished'}", {
                "what": "group", "chat_id": self.chat_id, "companion_id": None,
                "message_ids": [r.message["id"] for r in self.replies]})

    def close(self) -> None:
        """Let go of the model (the turn ends where it is)."""
        if self._current is not None:
            self._current.stop.set()
        self._release()

    def events(self) -> Iterator[tuple[str, object]]:
        try:
            for companion in self.speakers:
                turn = self.turns.group_reply(self, companion)
                self._current = turn
                yield "speaker", companion
                replies = turn.events()
                try:
                    for kind, value in replies:
                        if kind == "token":
                            yield "token", value
                        else:
                            self.replies.append(value)  # type: ignore[arg-type]
                            yield "reply", value
                finally:
                    replies.close()     # a client gone mid-reply: the partial reply is kept
                    turn.close()
                if turn.stop.is_set():      # aborted: the rest of the turn too
                    break
            yield "done", self.replies
        finally:
            self._release()

    def run(self) -> list[Reply]:
        """Generate every reply; the stored replies in order."""
        for kind, value in self.events():
            if kind == "done":
                return value  # type: ignore[return-value]
        return self.replies
