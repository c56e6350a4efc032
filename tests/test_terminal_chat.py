"""`companion chat`: the terminal chat, driven in a pseudo-terminal against a real daemon.

The daemon runs in-process (waitress in a thread, on a free port) with the session's model and
embedder, so nothing is loaded twice; the chat is the real `companion` command under pexpect.
"""

from __future__ import annotations

import io
from pathlib import Path

import pexpect
import pytest
import requests
from conftest import test_settings
from web import serve

from bench.daemon import COMPANION, clean_env, free_port
from companion.terminal import DaemonClient, DaemonError

UP = "\x1b[A"


@pytest.fixture
def daemon(tmp_path, generator, embedder):
    live, stop = serve(test_settings(tmp_path / "data"), generator, embedder)
    yield live
    stop()


def spawn(url: str, history: Path, *args: str, env: dict | None = None) -> pexpect.spawn:
    """`companion chat` in a pseudo-terminal, with no COMPANION_* from the environment."""
    clean = clean_env()
    clean.update(TERM="xterm", **(env or {}))
    return pexpect.spawn(str(COMPANION), ["chat", "--url", url, "--history-file", str(history), *args],
                         encoding="utf-8", timeout=120, dimensions=(40, 200), env=clean,
                         use_poll=True)   # select() fails once the suite has 1024 files open


def said(child: pexpect.spawn, command: str, until: str = "User> ") -> str:
    """Send a line; what the chat printed back before its next prompt."""
    child.sendline(command)
    child.expect_exact(command)
    child.expect_exact(until)
    return child.before.replace("\r\n", "\n").strip()


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_reply_regenerate_swipe_and_edit(daemon, tmp_path):
    child = spawn(daemon.url, tmp_path / "history")
    child.expect_exact("— Assistant")              # the active companion, then its last messages
    child.expect_exact("Assistant: Hello User")    # the greeting
    child.expect_exact("User> ")

    printed = said(child, "Hello, who are you?")
    assert printed.startswith("Assistant: ")
    reply = daemon.messages()[-1]
    assert reply["ai"] and printed == "Assistant: " + reply["text"]   # streamed = stored

    assert "(2/2)" in said(child, "/regenerate")
    reply = daemon.messages()[-1]
    assert len(reply["swipes"]) == 2 and reply["swipe_id"] == 1

    assert said(child, "/swipe left").endswith("(1/2)")
    assert daemon.messages()[-1]["swipe_id"] == 0
    assert "no alternative 3" in said(child, "/swipe 3")

    assert said(child, "/edit new text") == "Assistant: new text (1/2)"
    assert daemon.messages()[-1]["text"] == "new text"
    child.sendline("/edit")                        # in place: the line holds the current text
    child.expect_exact("edit> new text")
    child.send(" and more\r")
    child.expect_exact("Assistant: new text and more (1/2)")
    child.expect_exact("User> ")
    assert daemon.messages()[-1]["text"] == "new text and more"

    assert "unknown command /nope" in said(child, "/nope")
    child.sendline("/quit")
    assert finish(child) == 0
    history = (tmp_path / "history").read_text().splitlines()
    assert history[-3:] == ["/edit", "/nope", "/quit"]   # the text edited in place stays out of it


def test_memory_companion_switch_and_history(daemon, tmp_path):
    daemon.api("POST", "/api/memories", json={"text": "{{user}}'s cat is called Miso."})
    bob = daemon.api("POST", "/api/companions", json={"name": "Bob"})
    child = spawn(daemon.url, tmp_path / "history")
    child.expect_exact("User> ")

    assert "User's cat is called Miso." in said(child, "/memory what is the cat called")
    assert "Miso" in said(child, "/memory")
    child.send(UP + "\r")                          # the last line again, from the history
    child.expect_exact("Miso")
    child.expect_exact("User> ")

    assert said(child, "/companion") == "* Assistant\n  Bob"
    switched = said(child, "/companion bo")
    assert switched.startswith("— Bob")
    assert [c["name"] for c in daemon.api("GET", "/api/companions")["items"] if c["active"]] == ["Bob"]
    printed = said(child, "hi Bob")                # now in Bob's chat
    assert printed.startswith("Bob: ")
    bob_chat = daemon.api("GET", "/api/chats", params={"companion_id": bob["id"]})["items"][0]
    assert daemon.messages(bob_chat["id"])[-1]["text"] == printed.removeprefix("Bob: ")

    child.sendeof()                                # Ctrl-D leaves too
    assert finish(child) == 0
    lines = (tmp_path / "history").read_text().splitlines()
    assert lines[:2] == ["/memory what is the cat called", "/memory"] and lines[-1] == "hi Bob"

    again = spawn(daemon.url, tmp_path / "history")   # the history outlives the session
    again.expect_exact("User> ")
    again.send(UP)
    again.expect_exact("hi Bob")
    again.send("\x15/quit\r")                      # Ctrl-U clears the line
    assert finish(again) == 0


def test_ctrl_c_stops_the_reply_and_a_busy_daemon_is_said(daemon, tmp_path):
    # a long, random reply (EOS is unlikely at temperature 2 over the whole vocabulary)
    daemon.api("PATCH", "/api/companions/1/generation",
               json={"max_tokens": 300, "temperature": 2.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0})
    child = spawn(daemon.url, tmp_path / "history")
    child.expect_exact("User> ")
    child.sendline("Tell me a long story.")
    child.expect_exact("Assistant: ")
    child.expect(r"\S+\s+\S+\s+\S+")               # a few tokens have come
    printed = child.before + child.after
    child.sendintr()
    child.expect_exact(" (stopped)")
    printed += child.before
    child.expect_exact("User> ")
    stored = daemon.messages()[-1]
    assert stored["ai"] and stored["text"]
    assert " ".join(stored["text"].split()) == " ".join(printed.replace("^C", "").split())
    assert daemon.api("GET", "/api/status")["counts"]["messages"] == 3

    # another client is generating: the daemon's 429 is said, not a traceback, and the chat goes on
    with requests.post(daemon.url + "/api/prompt", json={"prompt": "Go on.", "stream": True}, stream=True,
                       timeout=60) as other:
        other_lines = other.iter_lines()           # kept: a dropped iterator closes the connection
        next(other_lines)                          # its first token: the model is taken
        busy = said(child, "Are you there?")
        requests.post(daemon.url + "/api/abort", timeout=60)
    assert "error: " in busy and "Traceback" not in busy, busy
    assert said(child, "/help").startswith("Type a message")
    child.sendline("/q")
    assert finish(child) == 0


def test_unreachable_daemon_exits_1(tmp_path):
    child = spawn(f"http://127.0.0.1:{free_port()}", tmp_path / "history")
    child.expect_exact("cannot reach the daemon")
    child.expect_exact("companion serve")
    assert finish(child) == 1


def test_api_key(tmp_path, generator, embedder):
    live, stop = serve(test_settings(tmp_path / "data", server={"api_key": "k"}), generator, embedder)
    try:
        child = spawn(live.url, tmp_path / "history")
        child.expect_exact("needs an API key: pass --api-key")
        assert finish(child) == 1
        child = spawn(live.url, tmp_path / "history", "--api-key", "wrong")
        child.expect_exact("refused the API key")
        assert finish(child) == 1
        child = spawn(live.url, tmp_path / "history", env={"COMPANION_API_KEY": "k"})
        child.expect_exact("— Assistant")
        child.expect_exact("User> ")
        child.sendline("/quit")
        assert finish(child) == 0
    finally:
        stop()


def test_client_errors_and_stream(daemon):
    """DaemonClient on its own: both error shapes become a DaemonError with the daemon's reason."""
    client = DaemonClient(daemon.url)
    with pytest.raises(DaemonError) as rest:
        client.patch("/api/messages/999", {"text": "x"})
    assert rest.value.status == 404 and rest.value.code == "not_found" and "999" in rest.value.message
    with pytest.raises(DaemonError) as compat:          # the AI Companion API answers plain text
        client.post("/api/prompt", {"prompt": ""})
    assert compat.value.status == 400 and compat.value.message and compat.value.code is None
    events = list(client.stream("/api/prompt", {"prompt": "Hi"}))
    tokens = "".join(data["text"] for event, data in events if event == "token")
    assert events[-1][0] == "done" and events[-1][1]["message"]["text"] == tokens
    with pytest.raises(DaemonError) as unreachable:
        DaemonClient(f"http://127.0.0.1:{free_port()}").get("/api/status")
    assert unreachable.value.status is None and "cannot reach" in unreachable.value.message


def test_messages_from_elsewhere_are_printed_and_its_own_are_not_printed_twice(daemon, tmp_path):
    child = spawn(daemon.url, tmp_path / "history")
    child.logfile_read = everything = io.StringIO()
    child.expect_exact("User> ")
    own = said(child, "Hello from the terminal")
    assert own.startswith("Assistant: ")
    chat_id = daemon.active_chat()["id"]
    reply = daemon.api("POST", "/api/prompt", json={"prompt": "And hello from my phone", "chat_id": chat_id})
    child.expect_exact("User: And hello from my phone")
    child.expect_exact(f"Assistant: {reply['text']}")
    child.expect_exact("User> ")                    # the prompt comes back under what was printed
    child.sendline("/quit")
    assert finish(child) == 0
    transcript = everything.getvalue()     # its own turn came back on the live stream, printed once
    assert "User: Hello from the terminal" not in transcript and transcript.count(own) == 1
