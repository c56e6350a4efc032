"""SIGKILL soak across every writer (#28): ROUNDS daemons in a row on one data dir, each killed
with SIGKILL at a random moment of random work, and after each kill nothing acknowledged is lost
and nothing half-written is taken for whole.

Each round:
1. checks what the last kill left, on a copy of the data dir: SQLite's integrity and foreign-key
   checks; every acknowledged user message, reply (its last acknowledged swipe), reply memory and
   added memory is there; every KV state file under its final name is whole (header, size, this
   model's fingerprint); no model file under its final name unless its sha256 is the hub's (the rest
   is a `.partial`); every cached speech file is a whole WAV;
2. starts `companion serve` on the data dir; once it is ready, the memory index holds every memory
   (index count = memories count) and no `.partial` of a KV state or of a speech file is left;
3. sends a chat whose KV state file is there its next message: the daemon loads the state, and its
   reply at temperature 0 must equal the reply computed cold (in-process services on the copy,
   without the KV state folder, on the same clock); every summary written since the last check must
   not be the beginning of the summary the model writes for its messages (a summary stopped short);
4. does random work: prompts in three chats of two companions, streamed or not (a switch of chat saves
   the state of the chat that held the model), regenerates (new swipes), memories added, idle gaps
   (summaries are written, KV states saved), a pull from a loopback hub that sends slowly (resumed by
   the next round when cut), a stored reply spoken (when Piper is installed);
5. kills the daemon with SIGKILL a random moment after the round's target: a streamed reply, a
   regenerate, a pull, an idle gap (a summary or a KV save under way), a chat switch (the KV save
   before the reply), a speech request, a memory add, or any moment.
The RNG is seeded: the seed is printed (and in every failure), and SOAK_SEED=N runs it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from test_pull import REPO, Hub, fake_gguf

from bench.daemon import Daemon, all_indexed, is_ready
from companion.characters.companions import placeholder_names
from companion.chat.prompt import resolve_placeholders
from companion.chat.summaries import transcript
from companion.config import load_settings
from companion.model.kv_states import StateFiles
from companion.services import build_services

pytestmark = pytest.mark.serve   # `companion serve` subprocesses

ROUNDS = 20
SEED = int(os.environ.get("SOAK_SEED") or random.randrange(1_000_000))
PULL_FILES = 8                   # the hub's files, pulled one after another (a cut one is resumed)
PULL_BYTES = 1_500_000
LINES = ["Good evening! How was your day?", "Tell me about the sea.", "What did you eat today?",
         "Do you like rainy days?", "I went for a long walk in the park.", "My sister Anna called me.",
         "What are you reading at the moment?", "I think I will bake bread tomorrow."]
TARGETS = ["stream", "regenerate", "pull", "idle", "switch", "speech", "memory", "any"]
CONFIG = """
[generation]
temperature = 0.0
max_tokens = 12
seed = 1
top_k = 1
[model]
path = "{model}"
n_ctx = 2048
hf_endpoint = "{hub}"
[memory]
summary_idle_seconds = 0.3
summary_block = 4
summary_max_tokens = 24
[server]
timezone = "UTC"
"""


class Slowly:
    """A response's output that writes 32 KB at a time, 20 ms apart."""

    def __init__(self, real) -> None:
        self.real = real

    def write(self, data: bytes) -> int:
        for start in range(0, len(data), 32_768):
            self.real.write(data[start:start + 32_768])
            time.sleep(0.02)
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


class SlowHub(Hub):
    """The loopback hub, sending a file's bytes slowly (a pull lasts about a second)."""

    def send_file(self, handler, name: str, body: bool) -> None:
        real = handler.wfile
        handler.wfile = Slowly(real)
        try:
            super().send_file(handler, name, body)
        except (BrokenPipeError, ConnectionResetError):
            pass         # the daemon was killed mid-download
        finally:
            handler.wfile = real


@dataclass
class Ledger:
    """What the daemons acknowledged, and what the soak knows of the data dir."""
    companions: dict[int, str] = field(default_factory=dict)    # id -> name
    chats: dict[int, int] = field(default_factory=dict)         # chat id -> companion id
    user_texts: set[tuple[int, str]] = field(default_factory=set)  # (chat, text) of acknowledged prompts
    replies: dict[int, str] = field(default_factory=dict)       # id -> its text (as stored, or resolved)
    exchanges: dict[int, str] = field(default_factory=dict)     # reply id -> the user text it answers
    custom: dict[int, str] = field(default_factory=dict)        # memory id -> text
    last_reply: dict[int, int] = field(default_factory=dict)    # chat -> its last message, a reply
    regenerating: set[int] = field(default_factory=set)         # a swipe was under way at the kill
    pulled: set[str] = field(default_factory=set)
    pull_next: int = 0
    spoken: int = 0
    summaries_checked: set[int] = field(default_factory=set)
    summaries_same: int = 0       # summaries the model wrote again word for word
    compared: int = 0             # replies after a KV state was loaded compared with the cold ones
    said: int = 0
    user_name: str = "User"


class Worker(threading.Thread):
    """A round's random work against one daemon, until the daemon is killed (or it runs out)."""

    def __init__(self, url: str, ledger: Ledger, rng: random.Random, target: str, speaks: bool) -> None:
        super().__init__(daemon=True)
        self.url, self.ledger, self.rng, self.target, self.speaks = url, ledger, rng, target, speaks
        self.reached = threading.Event()
        self.doing = ""
        self.done: list[str] = []         # the actions finished, with their seconds
        self.problems: list[str] = []
        self.chat: int | None = None      # the chat that spoke last (a prompt elsewhere is a switch)

    def run(self) -> None:
        plan = [self.rng.choice(self.kinds()) for _ in range(self.rng.randint(0, 2))]
        plan.append(self.target)
        plan += [self.rng.choice(self.kinds()) for _ in range(30)]
        try:
            for n, kind in enumerate(plan):
                started = time.monotonic()
                self.act(kind, target=n == len(plan) - 31)
                self.done.append(f"{kind} {time.monotonic() - started:.1f}")
        except requests.RequestException:
            return    # the daemon is gone
        except Exception as exc:     # an unexpected answer: a defect to report
            self.problems.append(f"{self.doing}: {exc!r}")
        finally:
            self.reached.set()

    def kinds(self) -> list[str]:
        return ["stream", "stream", "prompt", "prompt", "regenerate", "memory", "idle", "pull"] + (
            ["speech"] if self.speaks else [])

    def signal(self, target: bool) -> None:
        if target:
            self.reached.set()

    def act(self, kind: str, target: bool) -> None:
        self.doing = kind
        led = self.ledger
        if kind == "any":
            self.signal(True)
            kind = self.rng.choice(self.kinds())
        if kind in ("stream", "prompt", "switch"):
            chats = list(led.chats)
            if kind == "switch":
                chats = [c for c in chats if c != self.chat] or chats
            self.prompt(self.rng.choice(chats), stream=kind == "stream" or self.rng.random() < 0.5, target=target,
                        at_send=kind == "switch")
        elif kind == "regenerate":
            if not led.last_reply:
                return self.prompt(self.rng.choice(list(led.chats)), stream=True, target=target)
            self.regenerate(self.rng.choice(list(led.last_reply)), target)
        elif kind == "memory":
            companion = self.rng.choice(list(led.companions))
            led.said += 1
            text = f"Remember this, number {led.said}: {self.rng.choice(LINES)}"
            self.signal(target)
            response = requests.post(self.url + "/api/memories", json={"text": text, "companion_id": companion},
                                     timeout=60)
            self.expect(response, 201)
            led.custom[response.json()["id"]] = text
        elif kind == "idle":
            self.signal(target)
            time.sleep(self.rng.uniform(2.2, 3.0) if target else self.rng.uniform(0.4, 2.5))
        elif kind == "pull":
            self.pull(target)
        elif kind == "speech":
            if not self.speaks or not led.replies:
                return
            reply = self.rng.choice(list(led.replies))
            self.signal(target)
            response = requests.get(f"{self.url}/api/messages/{reply}/speech", params={"format": "wav"}, timeout=120)
            if response.status_code == 404:
                return      # a reply of a turn killed before it was acknowledged is not known
            self.expect(response, 200)
            led.spoken += 1

    def expect(self, response: requests.Response, status: int) -> None:
        if response.status_code != status:
            raise AssertionError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:300]}")

    def prompt(self, chat: int, stream: bool, target: bool, at_send: bool = False) -> None:
        led = self.ledger
        led.said += 1
        text = f"{self.rng.choice(LINES)} ({led.said})"
        self.chat = chat
        if at_send:
            self.signal(target)
        body = {"prompt": text, "chat_id": chat, "stream": stream}
        response = requests.post(self.url + "/api/prompt", json=body, stream=stream, timeout=120)
        self.expect(response, 200)
        led.user_texts.add((chat, text))     # committed before the reply is generated
        led.last_reply.pop(chat, None)
        if stream:
            message = self.streamed(response, target)
        else:
            message = response.json()
        led.replies[message["id"]] = message["text"]
        led.exchanges[message["id"]] = text
        led.last_reply[chat] = message["id"]

    def streamed(self, response: requests.Response, target: bool) -> dict:
        """The done event's message of an SSE reply; signals at its first token."""
        name = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                if name == "token":
                    self.signal(target)
                elif name == "done":
                    return json.loads(line[6:])["message"]
                elif name == "error":
                    raise AssertionError(f"the stream failed: {line}")
        raise requests.ConnectionError("the stream ended without its done event")

    def regenerate(self, chat: int, target: bool) -> None:
        led = self.ledger
        reply = led.last_reply[chat]
        stream = self.rng.random() < 0.5
        self.chat = chat
        led.regenerating.add(reply)
        response = requests.post(f"{self.url}/api/messages/{reply}/swipes", json={"stream": stream}, stream=stream,
                                 timeout=120)
        if stream:
            self.expect(response, 200)
            message = self.streamed(response, target)
            led.replies[reply] = message["text"]
        else:
            self.signal(target)
            self.expect(response, 201)
            led.replies[reply] = response.json()["text"]
        led.regenerating.discard(reply)

    def pull(self, target: bool) -> None:
        led = self.ledger
        if led.pull_next >= PULL_FILES:
            return self.signal(target)
        name = pull_name(led.pull_next)
        response = requests.post(self.url + "/api/pull", json={"model": f"{REPO}/{name}"}, stream=True, timeout=120)
        self.expect(response, 200)
        for line in response.iter_lines(decode_unicode=True):
            if not line:
                continue
            status = json.loads(line)
            if "error" in status:
                raise AssertionError(f"pull {name}: {status}")
            if status.get("completed"):
                self.signal(target)
            if status.get("status") == "success":
                led.pulled.add(name)
                led.pull_next += 1
                return
        raise requests.ConnectionError("the pull ended without success")


def pull_name(n: int) -> str:
    return f"Soak{n}-Q4_0.gguf"


DELAYS = {"stream": 0.6, "regenerate": 0.6, "pull": 0.8, "idle": 2.6, "switch": 0.3, "speech": 1.0,
          "memory": 0.05, "any": 6.0}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def whole_wav(data: bytes) -> bool:
    return data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") == len(data) - 8 and data[8:12] == b"WAVE"


def check_files(data: Path, hub: Hub, fingerprint: str, scratch: Path, seed: str) -> int:
    """What the kill left in the KV state, model and speech folders; returns how many KV states are whole."""
    whole = 0
    if (data / "kv_cache").is_dir():
        for path in (data / "kv_cache").iterdir():
            if path.suffix != ".kv":
                continue      # a write the kill cut: it never had the final name
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            shutil.copy(path, scratch / path.name)
            state = StateFiles(scratch, 1 << 40).read(path.stem, fingerprint)
            assert state is not None, f"{seed}: {path.name} is under its final name but not a whole state"
            whole += 1
    if (data / "models").is_dir():
        for path in (data / "models").iterdir():
            if path.name.endswith(".partial"):
                assert hub.files.get(path.name[:-len(".partial")]) is not None
                continue
            assert path.suffix == ".gguf", f"{seed}: {path.name} in the models folder"
            assert sha256_of(path) == hashlib.sha256(hub.files[path.name]).hexdigest(), \
                f"{seed}: {path.name} is under its final name with another sha256"
    if (data / "speech").is_dir():
        for path in (data / "speech").iterdir():
            if not path.name.endswith(".partial"):
                assert whole_wav(path.read_bytes()), f"{seed}: the cached speech {path.name} is not a whole WAV"
    return whole


def check_database(db: Path, led: Ledger, seed: str) -> None:
    """Integrity, and everything acknowledged is there; the ledger learns what the kill left."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall()[0][0] == "ok", seed
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], seed
        names = {r["id"]: r["name"] for r in conn.execute("select id, name from companions")}
        messages = {r["id"]: dict(r) for r in conn.execute("select * from messages")}
        users = {(r["chat_id"], r["text"]): r["id"] for r in messages.values() if not r["ai"]}
        for chat, text in led.user_texts:
            assert (chat, text) in users, f"{seed}: the acknowledged message {text!r} of chat {chat} is lost"
        for reply, text in led.replies.items():
            assert reply in messages, f"{seed}: the acknowledged reply {reply} is lost"
            stored = messages[reply]["text"]
            forms = (stored, resolve_placeholders(stored, names[led.chats[messages[reply]["chat_id"]]], led.user_name))
            if reply in led.regenerating:       # a swipe under way may have been stored, unacknowledged
                led.replies[reply] = stored
            else:
                assert text in forms, f"{seed}: reply {reply} is {stored!r}, acknowledged {text!r}"
        memories = [dict(r) for r in conn.execute("select * from memories")]
        exchanges = {(m["user_message_id"], m["reply_message_id"]) for m in memories if m["source"] == "exchange"}
        for reply, text in led.exchanges.items():
            user = users[(messages[reply]["chat_id"], text)]
            assert (user, reply) in exchanges, f"{seed}: the memory of reply {reply} is lost"
        kept = {m["id"]: m["text"] for m in memories}
        for memory, text in led.custom.items():
            assert kept.get(memory) == text, f"{seed}: the added memory {memory} is lost"
        for m in memories:
            if m["source"] == "summary":
                assert m["text"].strip() and m["first_message_id"] <= m["last_message_id"], seed
        # the chats as they are: a chat's last message, when a reply, can get new swipes
        led.last_reply.clear()
        for chat in led.chats:
            last = conn.execute("select id, ai, greeting from messages where chat_id = ? order by id desc limit 1",
                                [chat]).fetchone()
            if last is not None and last["ai"] and not last["greeting"] and last["id"] in led.replies:
                led.last_reply[chat] = last["id"]
        led.regenerating.clear()
    finally:
        conn.close()


def cold_services(config: Path, copy: Path, generator, embedder, when: datetime):
    """Services on the copy of the data dir (no KV states), on a clock stopped at `when`, the model's cache empty."""
    settings = load_settings(config, env={}, overrides={"data_dir": str(copy)})
    services = build_services(settings, generator=generator, embedder=embedder)
    services.turns.clock = lambda: when
    generator._llama.reset()
    return services


def check_summaries(services, generator, led: Ledger, seed: str) -> int:
    """Every summary not checked yet is not the beginning of the summary of its messages (it was not
    stopped short); returns how many were equal to the summary written again."""
    store = services.store
    same = 0
    rows = [row for chat in led.chats for row in store.chat_summaries(chat)]
    for row in rows:
        if row["id"] in led.summaries_checked:
            continue
        led.summaries_checked.add(row["id"])
        covered = [m for m in store.messages(row["chat_id"]) if row["first_message_id"] <= m["id"] <= row["last_message_id"]]
        char, user = placeholder_names(store, store.get_chat(row["chat_id"])["companion_id"])
        request, count = services.summaries._request(generator, covered, char, user)
        assert count == len(covered), seed
        text = "".join(generator.generate_aside(request, threading.Event())).strip()
        text = text or transcript(covered, "{{char}}", "{{user}}")[:2000]
        assert not (text.startswith(row["text"]) and len(text) > len(row["text"])), \
            f"{seed}: summary {row['id']} {row['text']!r} is cut short of {text!r}"
        same += text == row["text"]
    return same


def test_sigkill_soak_across_every_writer(tmp_path, generator, embedder):
    seed = f"SOAK_SEED={SEED}"
    print(seed)
    rng = random.Random(SEED)
    hub = SlowHub({pull_name(n): fake_gguf(PULL_BYTES, 100 + n) for n in range(PULL_FILES)})
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(hub=hub.url, model=generator.path))   # not a pulled one
    data, log = tmp_path / "data", tmp_path / "daemon.log"
    led = Ledger()
    outcomes: list[str] = []
    try:
        for round_no in range(ROUNDS + 1):
            daemon = soak_round(round_no, data, config, log, hub, led, rng, generator, embedder, seed, outcomes,
                                tmp_path)
            if round_no == ROUNDS:
                assert daemon.stop() == 0, daemon.tail()
    finally:
        hub.close()
    print(f"{seed}: kills {outcomes}; cold replies compared {led.compared}, summaries written again equal "
          f"{led.summaries_same} of {len(led.summaries_checked)}; pulled {sorted(led.pulled)}; spoken {led.spoken}")
    with sqlite3.connect(f"file:{data / 'companion.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert led.compared >= ROUNDS // 3, f"{seed}: only {led.compared} replies after a KV state was loaded were compared"
    assert led.summaries_checked, f"{seed}: no summary was written"
    assert led.pulled, f"{seed}: no pull finished"


def setup(url: str, led: Ledger) -> None:
    """Two companions with a 6-message window and no recall (a reply depends on its chat alone), three chats."""
    first = requests.get(url + "/api/companionData", timeout=30).json()
    settings = {"long_term_mem": 0, "short_term_mem": 6}
    response = requests.patch(f"{url}/api/companions/{first['id']}", json=settings, timeout=30)
    assert response.status_code == 200, response.text
    second = requests.post(url + "/api/companions", timeout=30, json={
        "name": "Mira", "description": "{{char}} is a cheerful gardener who talks about plants and the weather.",
        **settings})
    assert second.status_code == 201, second.text
    led.companions = {first["id"]: first["name"], second.json()["id"]: "Mira"}
    led.user_name = requests.get(url + "/api/userData", timeout=30).json()["name"]
    for companion in (first["id"], first["id"], second.json()["id"]):
        chat = requests.post(url + "/api/chats", json={"companion_id": companion}, timeout=30)
        assert chat.status_code == 201, chat.text
        led.chats[chat.json()["id"]] = companion


def compare_cold(daemon: Daemon, log: Path, offset: int, config: Path, copy: Path, generator, embedder,
                 led: Ledger, rng: random.Random, seed: str) -> int:
    """The next message of a chat whose KV state is kept: the daemon's reply (the state loaded) and
    the cold reply on the copy must be equal. Returns 1 when compared (0: the minute changed)."""
    kept = [c for c in led.chats if (daemon.data_dir / "kv_cache" / f"{c}.kv").exists()]
    if not kept:
        print("not compared: no chat has a KV state file")
        return 0
    chat = rng.choice(kept)
    led.said += 1
    text = f"{rng.choice(LINES)} ({led.said})"
    response = requests.post(daemon.url + "/api/prompt", json={"prompt": text, "chat_id": chat}, timeout=120)
    assert response.status_code == 200, response.text
    reply = response.json()
    led.user_texts.add((chat, text))
    led.replies[reply["id"]] = reply["text"]
    led.exchanges[reply["id"]] = text
    led.last_reply[chat] = reply["id"]
    with log.open("rb") as fh:
        fh.seek(offset)
        assert f"chat {chat}: restored a kv state".encode() in fh.read(), f"{seed}: chat {chat}'s state was not loaded"
    total = requests.get(f"{daemon.url}/api/chats/{chat}/messages", params={"limit": 1}, timeout=30).json()["total"]
    newest = requests.get(f"{daemon.url}/api/chats/{chat}/messages", timeout=30,
                          params={"limit": 10, "offset": max(0, total - 10)}).json()["items"]
    asked = next(m for m in newest if not m["ai"] and m["text"] == text)["date"]
    if asked[:16] != reply["date"][:16]:
        print(f"not compared: asked at {asked}, answered at {reply['date']}")
        return 0          # the prompt's time (to the minute) is not known
    services = cold_services(config, copy, generator, embedder, datetime.fromisoformat(asked).astimezone(timezone.utc))
    try:
        cold = services.turns.send(chat, text).message["text"]
    finally:
        services.close()
    assert reply["text"] == cold, f"{seed}: chat {chat}: after its KV state was loaded {reply['text']!r}, cold {cold!r}"
    print(f"chat {chat}: the reply after its KV state was loaded equals the cold one: {cold!r}")
    return 1


def soak_round(round_no: int, data: Path, config: Path, log: Path, hub: Hub, led: Ledger, rng: random.Random,
               generator, embedder, seed: str, outcomes: list[str], tmp_path: Path) -> Daemon:
    """One round (see the module's docstring); returns the last round's daemon running, others killed."""
    began = time.monotonic()
    phases: list[str] = []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - began:.1f}")

    copy = tmp_path / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    states = 0
    if round_no:
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("kv_cache", "models", "speech", "logs"))
        check_database(copy / "companion.db", led, seed)
        states = check_files(data, hub, generator.fingerprint(), tmp_path / "scratch", seed)
    offset = log.stat().st_size if log.exists() else 0
    phase("checked")
    daemon = Daemon(data, config, log)
    try:
        daemon.wait_until(is_ready)
        status = daemon.wait_until(all_indexed, timeout=240)
        phase("ready")
        assert status["counts"]["indexed_memories"] == status["counts"]["memories"]
        for folder in ("kv_cache", "speech"):
            left = [p.name for p in (data / folder).glob("*partial*")] if (data / folder).is_dir() else []
            assert not left, f"{seed}: round {round_no}: {folder} keeps what a killed write left: {left}"
        if round_no == 0:
            setup(daemon.url, led)
        else:
            if states:
                led.compared += compare_cold(daemon, log, offset, config, copy, generator, embedder, led, rng, seed)
                phase("compared")
            services = cold_services(config, copy, generator, embedder, datetime.now(timezone.utc))
            try:
                led.summaries_same += check_summaries(services, generator, led, seed)
            finally:
                services.close()
            phase("summaries")
        if round_no == ROUNDS:
            return daemon
        speaks = daemon.get_json("/api/voice")["speak"]["available"]
        target = TARGETS[round_no % len(TARGETS)] if round_no < len(TARGETS) else rng.choice(TARGETS)
        if target == "speech" and not speaks:
            target = "any"
        worker = Worker(daemon.url, led, rng, target, speaks)
        worker.start()
        worker.reached.wait(timeout=120)
        time.sleep(rng.uniform(0, DELAYS[target]))
        daemon.kill()
        phase("killed")
        print(f"round {round_no}: {target}, killed during {worker.doing} after {worker.done}; {', '.join(phases)}", flush=True)
        outcomes.append(f"{round_no}:{target}@{worker.doing}")
        worker.join(timeout=60)
        assert not worker.problems, f"{seed}: round {round_no}: {worker.problems}"
        return daemon
    except BaseException:
        daemon.kill()
        raise
