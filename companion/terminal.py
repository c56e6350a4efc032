"""`companion chat`: a terminal chat with a running daemon, over its HTTP API.

Two parts: `DaemonClient`, a small HTTP client (stdlib only: the chat needs no extra runtime
dependency), and `ChatSession`, the read-eval-print loop on top of it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator

import click

try:  # line editing and history where the platform has it; plain input() otherwise
    import readline
except ImportError:  # pragma: no cover - Windows without pyreadline
    readline = None  # type: ignore[assignment]

DEFAULT_URL = "http://127.0.0.1:3000"
LAST_MESSAGES = 6     # shown at start and after switching companion
HISTORY_LENGTH = 1000


class DaemonError(Exception):
    """The daemon answered an error, or could not be reached (status None)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def error_message(body: bytes) -> tuple[str, str | None]:
    """The reason in an error body: {"error": {"code", "message"}} (REST, OpenAI) or plain text (compat)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text[:500] or "no reason given", None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"]), error.get("code")
    return text[:500], None


def parse_sse(lines: Iterable[bytes]) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs from the lines of a Server-Sent Events body."""
    for _, name, data in sse_events(lines):
        yield name, data


def sse_events(lines: Iterable[bytes]) -> Iterator[tuple[str | None, str, dict]]:
    """(id, event, data) from the lines of a Server-Sent Events body (id None when it has none)."""
    data: list[str]
    event_id, name, data = None, "message", []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, name, json.loads("\n".join(data))
            event_id, name, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
    if data:
        yield event_id, name, json.loads("\n".join(data))


class DaemonClient:
    """JSON over HTTP to a companion daemon, with `Authorization: Bearer KEY` when a key is given."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 30,
                 stream_timeout: float = 600) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    def _open(self, method: str, path: str, body: dict | None, params: dict | None, timeout: float,
              accept: str = "application/json"):
        query = "?" + urllib.parse.urlencode(params) if params else ""
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path + query, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                message, code = error_message(exc.read())
            raise DaemonError(message, exc.code, code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonError(f"cannot reach the daemon at {self.url}: {reason}") from None

    def request(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> Any:
        """One request; the JSON answer (None for an empty one)."""
        with self._open(method, path, body, params, self.timeout) as response:
            raw = response.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict | None = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def patch(self, path: str, body: dict) -> Any:
        return self.request("PATCH", path, body)

    def put(self, path: str, body: dict) -> Any:
        return self.request("PUT", path, body)

    def stream(self, path: str, body: dict) -> Generator[tuple[str, dict], None, None]:
        """POST and yield the answer's (event, data) pairs; a plain JSON answer comes as one 'done'."""
        with self._open("POST", path, {**body, "stream": True}, None, self.stream_timeout,
                        accept="text/event-stream") as response:
            if response.headers.get_content_type() != "text/event-stream":
                yield "done", {"message": json.loads(response.read() or b"{}")}
                return
            yield from parse_sse(response)

    def events(self, last_id: str | None = None) -> Iterator[tuple[str | None, str, dict]]:
        """Subscribe to the daemon's live events: (id, event, data), until the stream ends."""
        params = {"last_event_id": last_id} if last_id else None
        with self._open("GET", "/api/events", None, params, self.stream_timeout,
                        accept="text/event-stream") as response:
            yield from sse_events(response)

    def items(self, path: str, **params: Any) -> list[dict]:
        """Every item of a paged list ({"items", "total"})."""
        items: list[dict] = []
        while True:
            page = self.get(path, **params, limit=200, offset=len(items))
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items


@contextmanager
def abort_on_interrupt(client: DaemonClient) -> Iterator[dict]:
    """While a reply streams, Ctrl-C asks the daemon to stop (it keeps the partial reply) and the
    stream goes on to its end; a second Ctrl-C raises KeyboardInterrupt to stop waiting."""
    state = {"aborted": False}

    def interrupted(signum, frame) -> None:
        if state["aborted"]:
            raise KeyboardInterrupt
        state["aborted"] = True
        try:
            client.post("/api/abort")
        except DaemonError:
            raise KeyboardInterrupt from None

    try:
        previous = signal.signal(signal.SIGINT, interrupted)
    except ValueError:   # not the main thread: Ctrl-C cannot reach us anyway
        previous = None
    try:
        yield state
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def default_history_file() -> Path:
    import platformdirs

    return platformdirs.user_state_path("companion") / "chat_history"


def one_line(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


HELP = """\
Type a message and press Enter to send it. Commands:
  /regenerate             another alternative of the last reply (the earlier ones stay as swipes)
  /swipe [left|right|N]   choose among the last reply's alternatives (alone: list them)
  /edit [TEXT]            edit the last message (yours or the reply); without TEXT, edit it in place
  /memory [QUERY]         long-term memories matching QUERY (alone: the newest)
  /companion [NAME]       talk to another companion (alone: list them)
  /help                   this help
  /quit                   leave (so does Ctrl-D)
Ctrl-C while a reply comes stops it (the daemon keeps what it said). //text sends "/text".
Commands may be shortened: /r, /s left, /e, /m, /c, /q."""


class LiveMessages:
    """Prints the messages that arrive in the session's chat from elsewhere (a browser tab,
    another client, the companion writing first), read from GET /api/events in a thread.

    The session's own turn is told too; it is known by the generation it waits for (one runs
    at a time), and not printed twice."""

    def __init__(self, session: "ChatSession") -> None:
        self.session = session
        self.last_id: str | None = None
        self.own_turn = threading.Event()    # set by the session while its own reply is on its way
        self.output = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._listen, name="live-events", daemon=True).start()

    def _listen(self) -> None:
        delay = 1.0
        while True:
            try:
                for event_id, name, data in self.session.client.events(self.last_id):
                    self.last_id = event_id or self.last_id
                    self.handle(name, data)
                    delay = 1.0
            except (DaemonError, OSError, ValueError):
                pass       # the daemon went away or every stream slot is taken: later
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def handle(self, name: str, data: dict) -> None:
        """One live event: print a message that came from elsewhere into this chat."""
        if data.get("chat_id") != self.session.chat_id:
            return
        if self.own_turn.is_set():
            if name in ("generation.finished", "generation.aborted"):
                self.own_turn.clear()
            return
        if name == "message.created":
            with self.output:
                prompt = f"{self.session.user_name}> "
                typed = readline.get_line_buffer() if readline is not None else ""
                self.session.echo("\r\x1b[K", nl=False)
                self.session.show(data["message"], note=" (written first)" if data["message"].get("initiated") else "")
                self.session.echo(prompt + typed, nl=False)


class ChatSession:
    """The terminal chat: talks in one chat of one companion, shown as 'Name: text' lines."""

    def __init__(self, client: DaemonClient, echo: Callable[..., None] = click.echo) -> None:
        self.client = client
        self.echo = echo
        self.companion: dict = {}
        self.chat_id: int | None = None
        self.user_name = "You"
        self.live = LiveMessages(self)
        self.commands: dict[str, Callable[[str], None]] = {
            "/regenerate": self.regenerate, "/swipe": self.swipe, "/edit": self.edit,
            "/memory": self.memory, "/companion": self.switch_companion, "/help": self.help,
        }

    # start ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the daemon, find the active companion and chat, show its last messages."""
        try:
            status = self.client.get("/api/status")
        except DaemonError as exc:
            if exc.status == 401:
                hint = ("refused the API key: check --api-key (or COMPANION_API_KEY)" if self.client.api_key else
                        "needs an API key: pass --api-key KEY (or set COMPANION_API_KEY)")
                raise DaemonError(f"the daemon at {self.client.url} {hint}", exc.status, exc.code) from None
            if exc.status is None:
                raise DaemonError(f"{exc.message}; is `companion serve` running? (--url picks another daemon)")
            raise
        model = status.get("model", {})
        if model.get("state") == "loading":
            self.echo("(the model is still loading: replies come once it is ready)")
        elif model.get("state") == "failed":
            self.echo(f"(the model failed to load: {model.get('error')}; replies will fail)")
        user = self.client.get("/api/userData")
        self.user_name = user.get("name") or self.user_name
        active = [c for c in self.client.items("/api/companions") if c.get("active")]
        if not active:
            raise DaemonError("the daemon has no active companion")
        self.enter(active[0])

    def enter(self, companion: dict) -> None:
        """Talk in a companion's active chat from now on, and show its last messages."""
        chats = self.client.items("/api/chats", companion_id=companion["id"])
        chat = next((c for c in chats if c.get("active")), chats[0] if chats else None)
        if chat is None:
            raise DaemonError(f"{companion['name']} has no chat")
        self.companion, self.chat_id = companion, chat["id"]
        messages, total = self.last_messages(LAST_MESSAGES)
        title = f" ({chat['title']})" if chat.get("title") else ""
        self.echo(f"— {companion['name']}{title}, {total} message{'s' if total != 1 else ''} "
                  "(/help for commands) —")
        for message in messages:
            self.show(message)

    # messages ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.companion.get("name", "Companion")

    def last_messages(self, count: int) -> tuple[list[dict], int]:
        """The chat's last `count` messages, oldest first, and how many it has."""
        path = f"/api/chats/{self.chat_id}/messages"
        total = self.client.get(path, limit=1, offset=0)["total"]
        page = self.client.get(path, limit=count, offset=max(total - count, 0)) if total else {"items": []}
        return page["items"], total

    def last_message(self) -> dict | None:
        messages, _ = self.last_messages(1)
        return messages[0] if messages else None

    def show(self, message: dict, note: str = "") -> None:
        swipes = message.get("swipes") or []
        counter = f" ({message['swipe_id'] + 1}/{len(swipes)})" if len(swipes) > 1 else ""
        speaker = self.name if message["ai"] else self.user_name
        self.echo(f"{speaker}: {message['text']}{counter}{note}")

    def reply(self, path: str, body: dict) -> dict | None:
        """Stream a reply, printing its tokens after the companion's name as they come.

        The stored message; None when it failed (said on a line of its own) or the user stopped
        waiting. A daemon that cannot start the reply raises DaemonError.
        """
        self.echo(f"{self.name}: ", nl=False)
        self.live.own_turn.set()     # its events come back on the live stream: not printed again
        try:
            return self._streamed(self.client.stream(path, body))
        except DaemonError:
            self.live.own_turn.clear()   # it did not start (busy, refused) or the daemon went away
            raise

    def _streamed(self, events: Generator[tuple[str, dict], None, None]) -> dict | None:
        message = None
        with abort_on_interrupt(self.client) as state:
            try:
                for event, data in events:
                    if event == "token":
                        self.echo(data.get("text", ""), nl=False)
                    elif event == "done":
                        message = data.get("message")
                    elif event == "error":
                        self.echo(f"\nerror: {data.get('message', data)}")
                        return None
            except KeyboardInterrupt:
                self.echo("\n(stopped waiting; the daemon keeps what it said)")
                return None
            except DaemonError:
                self.echo()
                raise
            finally:
                events.close()
        if state["aborted"]:
            self.echo(" (stopped)", nl=False)
        self.echo()
        return message

    def send(self, text: str) -> None:
        self.reply("/api/prompt", {"prompt": text, "chat_id": self.chat_id})

    # commands ------------------------------------------------------------------------------

    def last_reply(self) -> dict | None:
        message = self.last_message()
        if message is None or not message["ai"]:
            self.echo("there is no reply to work on yet: send a message first")
            return None
        return message

    def regenerate(self, arg: str) -> None:
        """Another alternative of the last reply."""
        message = self.last_reply()
        if message is None:
            return
        if self.reply(f"/api/messages/{message['id']}/swipes", {}) is not None:
            latest = self.last_message()
            if latest and latest["id"] == message["id"]:
                self.echo(f"({latest['swipe_id'] + 1}/{len(latest['swipes'])})")

    def swipe(self, arg: str) -> None:
        """Choose among the last reply's alternatives: left, right or a number (from 1)."""
        message = self.last_reply()
        if message is None:
            return
        swipes, current = message["swipes"], message["swipe_id"]
        if not arg:
            for number, text in enumerate(swipes, 1):
                self.echo(f"{'*' if number == current + 1 else ' '}{number}. {one_line(text)}")
            return
        if arg in ("left", "l", "<"):
            index = current - 1
        elif arg in ("right", "r", ">"):
            index = current + 1
        elif arg.isdigit():
            index = int(arg) - 1
        else:
            self.echo("usage: /swipe [left|right|N]")
            return
        if not 0 <= index < len(swipes):
            self.echo(f"no alternative {index + 1}: the reply has {len(swipes)} (/regenerate makes another)")
            return
        chosen = self.client.put(f"/api/messages/{message['id']}/swipe", {"index": index})
        self.echo(f"{self.name}: {chosen['text']} ({chosen['swipe_id'] + 1}/{len(chosen['swipes'])})")

    def edit(self, arg: str) -> None:
        """Edit the last message: TEXT replaces it; alone, its text is put on the line to edit."""
        message = self.last_message()
        if message is None:
            self.echo("the chat has no message to edit")
            return
        try:
            text = arg or edit_line("edit> ", message["text"])
        except (EOFError, KeyboardInterrupt):
            text = ""
            self.echo()
        if not text.strip() or text == message["text"]:
            self.echo("(unchanged)")
            return
        self.show(self.client.patch(f"/api/messages/{message['id']}", {"text": text}))

    def memory(self, arg: str) -> None:
        """Memories matching a query (best first), or the newest."""
        params: dict = {"companion_id": self.companion["id"], "limit": 5 if arg else 10}
        if arg:
            params["q"] = arg
        items = self.client.get("/api/memories", **params)["items"]
        if not items:
            self.echo("no memories match" if arg else "no memories yet")
        for item in items:
            score = f"{item['score']:.2f} " if item.get("score") is not None else ""
            text = item.get("display_text") or item["text"]   # names filled in by the daemon
            self.echo(f"  [{item['id']}] {score}{one_line(text)}")

    def switch_companion(self, arg: str) -> None:
        """List the companions, or talk to the one whose name matches."""
        companions = self.client.items("/api/companions")
        if not arg:
            for c in companions:
                self.echo(f"{'*' if c['id'] == self.companion.get('id') else ' '} {c['name']}")
            return
        wanted = arg.casefold()
        found = [c for c in companions if c["name"].casefold() == wanted] or \
                [c for c in companions if c["name"].casefold().startswith(wanted)]
        if len(found) != 1:
            names = ", ".join(c["name"] for c in found)
            self.echo(f"{arg!r} matches {names}: be more specific" if found else
                      f"no companion named {arg!r} (/companion lists them)")
            return
        self.enter(self.client.post(f"/api/companions/{found[0]['id']}/activate"))

    def help(self, arg: str) -> None:
        self.echo(HELP)

    # the loop ------------------------------------------------------------------------------

    def command(self, line: str) -> Callable[[str], None] | None:
        """The handler a '/word' line names (a unique prefix will do), or None after saying why."""
        word, _, _ = line.partition(" ")
        matches = [name for name in (*self.commands, "/quit") if name.startswith(word)]
        if len(matches) != 1:
            self.echo(f"unknown command {word}: /help lists them" if not matches else
                      f"{word} could be {', '.join(matches)}")
            return None
        return self.commands.get(matches[0], self.quit)

    def quit(self, arg: str) -> None:
        raise EOFError

    def handle(self, line: str) -> None:
        """Run one line: a command, or a message to send."""
        line = line.strip()
        if not line:
            return
        if line.startswith("/") and not line.startswith("//"):
            handler = self.command(line)
            if handler is not None:
                handler(line.partition(" ")[2].strip())
            return
        self.send(line[1:] if line.startswith("//") else line)

    def run(self) -> None:
        """Read lines until /quit or end of input; messages from elsewhere are printed meanwhile."""
        self.live.start()
        while True:
            try:
                line = input(f"{self.user_name}> ")
            except KeyboardInterrupt:   # Ctrl-C at the prompt: a fresh line, as in a shell
                self.echo()
                continue
            except EOFError:
                self.echo()
                return
            try:
                self.handle(line)
            except EOFError:
                return
            except DaemonError as exc:
                self.echo(f"error: {exc.message}")
            except KeyboardInterrupt:
                self.echo()


def edit_line(prompt: str, text: str) -> str:
    """Read a line with `text` already on it to edit (newlines shown as \\n); without readline,
    show the text and read a new one. The edited line stays out of the history."""
    if readline is None:
        click.echo(f"now: {text}")
        return input("new text (Enter keeps it): ") or text
    readline.set_startup_hook(lambda: readline.insert_text(text.replace("\n", "\\n")))
    try:
        line = input(prompt)
    finally:
        readline.set_startup_hook()
    length = readline.get_current_history_length()
    if line and length:
        readline.remove_history_item(length - 1)
    return line.replace("\\n", "\n")


@contextmanager
def history(path: Path | None) -> Iterator[None]:
    """Load the line history from `path` and save it back at the end (private to the user)."""
    if readline is None or path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        readline.read_history_file(path)
    except OSError as exc:
        click.echo(f"(no history: {exc})", err=True)
        path = None
    readline.set_history_length(HISTORY_LENGTH)
    try:
        yield
    finally:
        if path is not None:
            try:
                readline.write_history_file(path)
            except OSError as exc:
                click.echo(f"(history not saved: {exc})", err=True)


def run_chat(url: str, api_key: str | None, history_file: str | None) -> int:
    """`companion chat`: 0 when the user leaves, 1 when the daemon cannot be used."""
    session = ChatSession(DaemonClient(url, api_key))
    try:
        session.start()
    except DaemonError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        return 1
    with history(Path(history_file) if history_file else default_history_file()):
        session.run()
    return 0
