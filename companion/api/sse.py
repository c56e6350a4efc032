"""Server-Sent Events for a generating turn, and the JSON shapes of a reply."""

from __future__ import annotations

import json
from typing import Callable, Iterator

from flask import Response

from companion.api import services
from companion.chat.streams import GroupStream, Reply, TurnStream
from companion.errors import CompanionError
from companion.voice.narration import Narration


def event(name: str, data: dict, event_id: int | None = None) -> str:
    """One SSE event (with an id, for clients that reconnect with Last-Event-ID)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def message_json(reply: Reply) -> dict:
    """The AI Companion API's reply shape: {id, ai, text, date}."""
    m = reply.message
    return {"id": m["id"], "ai": True, "text": m["text"], "date": m["created_at"]}


def used_json(reply: Reply) -> dict:
    """What a reply used: the memories recalled for it, the time window its prompt named
    ("yesterday": recall looked only there), and the lore entries."""
    return {"memories": [{"id": m.id, "text": m.text, "score": m.score, "created_at": m.created_at}
                         for m in reply.memories],
            "memory_window": reply.memory_window, "lore": reply.lore}


def done_json(reply: Reply) -> dict:
    """The final event of a streamed turn: the stored reply and what it used."""
    return {"message": message_json(reply), **used_json(reply)}


class TurnEvents:
    """The common end of an SSE body over a turn: closing it stops speaking, generating and the turn."""

    narration: Narration | None
    turn: TurnStream | GroupStream
    _events: Iterator

    def close(self) -> None:
        if self.narration:
            self.narration.close()
        self._events.close()   # type: ignore[attr-defined]
        self.turn.close()


class EventStream(TurnEvents):
    """The body of an SSE response: token events, then done (or error); with a narration, audio
    events too, each sentence's as soon as it is spoken, all before done.

    WSGI servers call close() when the client goes away or the response ends; closing
    mid-way stops the generation and keeps the partial reply.
    """

    def __init__(self, turn: TurnStream, done: Callable[[Reply], dict], narration: Narration | None = None) -> None:
        self.turn = turn
        self.done = done
        self.narration = narration
        self._events = turn.events()

    def __iter__(self) -> Iterator[str]:
        try:
            for kind, value in self._events:
                if kind == "token":
                    yield event("token", {"text": value})
                    if self.narration:
                        yield from (event("audio", a) for a in self.narration.spoken(str(value)))
                else:
                    if self.narration:
                        yield from (event("audio", a) for a in self.narration.ending())
                    yield event("done", self.done(value))  # type: ignore[arg-type]
        except CompanionError as exc:
            yield event("error", {"message": exc.message, "code": exc.code})


def stream_response(turn: TurnStream, done: Callable[[Reply], dict], speak: bool = False) -> Response:
    """An SSE response that generates as it is sent (and speaks each sentence, with speak)."""
    narration = services().voice.narration(turn.companion["id"]) if speak else None
    return Response(EventStream(turn, done, narration), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
