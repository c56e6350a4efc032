"""GET /api/events: the live events as Server-Sent Events, one stream per client.

A client that reconnects with Last-Event-ID gets what it missed from the bounded buffer; one
too far behind gets a single `resync` event (reload everything). Comment lines keep an idle
stream open through proxies. The first event, `hello`, says what is generating now.
"""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, Response, request

from companion.api import services
from companion.api.chats import message_rest
from companion.api.sse import event as sse
from companion.errors import BadRequest, TooManyStreams
from companion.events import Event, EventBus

bp = Blueprint("events", __name__)


def event_data(event: Event) -> dict:
    """An event's data as clients get it: messages in the REST shape."""
    data = event.data
    if "message" in data:
        data = {**data, "message": message_rest(data["message"])}
    return data


class EventsStream:
    """The body of one subscription; close() (the client went away) lets the slot go."""

    def __init__(self, bus: EventBus, last_id: int | None, heartbeat: float, hello: dict) -> None:
        self.bus, self.last_id, self.heartbeat, self.hello = bus, last_id, heartbeat, hello
        self._left = False

    def __iter__(self) -> Iterator[str]:
        cursor = self.hello["last_event_id"]     # what happens from the hello on is sent
        yield f"retry: 3000\n\n{sse('hello', self.hello)}"
        if self.last_id is not None:
            missed = self.bus.after(self.last_id)
            if missed is None:
                yield sse("resync", {"reason": "the events since that id are no longer kept"}, cursor)
            else:
                for old in missed:
                    yield sse(old.kind, event_data(old), old.id)
                cursor = missed[-1].id if missed else self.last_id
        while not self.bus.closed:
            events = self.bus.wait_after(cursor, self.heartbeat)
            if events is None:       # fell behind the buffer
                cursor = self.bus.last_id
                yield sse("resync", {"reason": "too many events were missed"}, cursor)
            elif events:
                cursor = events[-1].id
                yield "".join(sse(e.kind, event_data(e), e.id) for e in events)
            else:
                yield ": heartbeat\n\n"

    def close(self) -> None:
        if not self._left:
            self._left = True
            self.bus.leave()


@bp.get("/api/events")
def events():
    """Subscribe to the live events (Last-Event-ID header or ?last_event_id= to catch up)."""
    svc = services()
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    last_id = None
    if raw:
        try:
            last_id = int(raw)
        except ValueError:
            raise BadRequest("Last-Event-ID must be an event id (an integer)") from None
    settings = svc.settings.server
    if not svc.events.join(settings.max_event_streams):
        raise TooManyStreams(f"too many event streams are open (at most {settings.max_event_streams}, "
                               "[server] max_event_streams)", retry_after=10)
    hello = {"last_event_id": svc.events.last_id, "generating": svc.turns.generating,
             **svc.loading_states()}
    return Response(EventsStream(svc.events, last_id, settings.event_heartbeat_seconds, hello),
                    mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
