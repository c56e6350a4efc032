"""Pure functions that build the prompt from companion, user, history, memories and the prompt.

Layout, built so llama.cpp can reuse the evaluated prefix (KV cache) from turn to turn::

    [system: persona, personality, scenario, user persona, example dialogue, tuning]  stable
    [history window: oldest .. newest-1, each message after the note its turn had]   grows by appending
    [this turn's note: lore triggered now, recalled memories, current date and time] small, often none
    [newest user message][assistant cue]

A turn's note is kept with the message it went before (the user's message; in a group chat or
when the companion writes first, the reply itself), and the history shows it there again as a
system message: turn N+1's prompt is turn N's prompt, its reply, the new note and the new
message, a pure append, so llama.cpp evaluates only those. A swipe reuses the note of the
message it answers. A card's post-history instructions follow the newest note only (kept in
every note they would repeat down the window).

The history window starts on a multiple of half the short-term window, so it stays put for
several turns and then drops a whole block at once instead of sliding every turn; when the token
budget makes it shorter than that, it drops half of what fits at once and keeps that start
(kept_from: the chat's stored window start) until it no longer fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

PLACEHOLDER = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(bot|user)>", re.IGNORECASE)
EXAMPLE_SEPARATOR = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


def resolve_placeholders(text: str, char: str, user: str) -> str:
    """Replace {{char}}, {{user}}, <BOT> and <USER> (any case) with the names."""
    def name(match: re.Match) -> str:
        which = (match.group(1) or match.group(2)).lower()
        return char if which in ("char", "bot") else user
    return PLACEHOLDER.sub(name, text or "")


@dataclass
class Turn:
    """One message of the history as the prompt sees it, and who said it ("" for the
    companion itself or the user, as the prompt's char and user name them)."""
    ai: bool
    text: str
    speaker: str = ""
    note: str = ""      # the note its turn's prompt put just before it (placeholders unresolved)


@dataclass
class Recalled:
    """One recalled long-term memory: its raw text and when it happened."""
    text: str
    created_at: str


@dataclass
class GroupMember:
    """A group member's stable part of a group chat's prompt (placeholders resolved to its name)."""
    name: str
    persona: str = ""
    personality: str = ""


@dataclass
class PromptInput:
    """Everything a prompt is built from; texts may hold placeholders."""
    char: str
    user: str
    persona: str = ""
    personality: str = ""
    scenario: str = ""
    user_persona: str = ""
    example_dialogue: str = ""
    roleplay: bool = False
    tuning_example: tuple[str, str] | None = None
    system_prompt: str = ""                 # the card's: replaces the default system text
    post_history_instructions: str = ""     # the card's: after the history, every turn
    lore_before: list[str] = field(default_factory=list)   # constant lore, before the character
    lore_after: list[str] = field(default_factory=list)    # constant lore, after the character
    lore_triggered: list[str] = field(default_factory=list)  # lore this turn's messages triggered
    note: str | None = None                 # this turn's note as kept (a swipe): instead of a new one
    history: list[Turn] = field(default_factory=list)
    memories: list[Recalled] = field(default_factory=list)
    newest: str = ""
    now: datetime | None = None             # aware, in the person's timezone (default: now, the machine's)
    story: str | None = None                # the chat's "story so far" when it has it on
    last_message_at: str | None = None      # when the last message before this one was said
    time_refresh_minutes: float = 0         # a time a note in the history shows holds this long (0: none)
    initiative: str = ""                    # the companion writes first (no newest message): why
    group: list[GroupMember] = field(default_factory=list)   # a group chat: every member, in the group's order


DEFAULT_SYSTEM = ("You are {{char}}. Continue the conversation with {{user}}, "
                  "writing only {{char}}'s next reply, in character.")
ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)


GROUP_SYSTEM = "This is a group chat between {{user}} and {names}. Each of them writes only as themselves."
GROUP_NOTE = "Write only {{char}}'s next message in this group chat."


def group_system_text(p: PromptInput) -> str:
    """A group chat's stable system part: every member in the group's order, the same whoever
    speaks next, so the cached prompt prefix survives a change of speaker."""
    parts = [GROUP_SYSTEM.replace("{names}", ", ".join(m.name for m in p.group))]
    for member in p.group:
        lines = [f"{member.name}: {member.persona.strip()}" if member.persona.strip() else member.name]
        if member.personality.strip():
            lines.append(f"{member.name}'s personality: {member.personality.strip()}")
        parts.append("\n".join(lines))
    if p.user_persona.strip():
        parts.append(f"About {{{{user}}}}: {p.user_persona.strip()}")
    if p.roleplay:
        parts.append("Describe actions between asterisks, for example *smiles warmly*.")
    if p.story and p.story.strip():
        parts.append(f"The story so far:\n{p.story.strip()}")
    return resolve_placeholders("\n\n".join(parts), "", p.user)


def system_text(p: PromptInput) -> str:
    """The stable system part: who the companion is, who the user is, how it talks.

    A card's system_prompt replaces the default first line; {{original}} in it stands for
    that default. Constant lore goes before or after the character as its entries say.
    A group chat has its own (group_system_text).
    """
    if p.group:
        return group_system_text(p)
    opening = DEFAULT_SYSTEM
    if p.system_prompt.strip():
        opening = ORIGINAL.sub(lambda _: DEFAULT_SYSTEM, p.system_prompt.strip())
    parts = [opening]
    parts += [text.strip() for text in p.lore_before if text.strip()]
    if p.persona.strip():
        parts.append(p.persona.strip())
    if p.personality.strip():
        parts.append(f"{{{{char}}}}'s personality: {p.personality.strip()}")
    if p.scenario.strip():
        parts.append(f"Scenario: {p.scenario.strip()}")
    parts += [text.strip() for text in p.lore_after if text.strip()]
    if p.user_persona.strip():
        parts.append(f"About {{{{user}}}}: {p.user_persona.strip()}")
    if p.roleplay:
        parts.append("Describe {{char}}'s actions between asterisks, for example *smiles warmly*.")
    examples = [e.strip() for e in EXAMPLE_SEPARATOR.split(p.example_dialogue or "") if e.strip()]
    if examples:
        parts.append("Examples of how {{char}} talks:\n" + "\n\n".join(examples))
    if p.tuning_example:
        user_text, ai_text = p.tuning_example
        parts.append("Imitate the style of this exchange:\n"
                     f"{{{{user}}}}: {user_text.strip()}\n{{{{char}}}}: {ai_text.strip()}")
    if p.story and p.story.strip():
        parts.append(f"The story so far:\n{p.story.strip()}")
    return resolve_placeholders("\n\n".join(parts), p.char, p.user)


def story_text(summaries: list[str], count_tokens: Callable[[str], int], budget: int) -> str:
    """A chat's "story so far": its newest summaries, oldest first, within budget tokens."""
    kept: list[str] = []
    for text in reversed(summaries):
        if count_tokens("\n".join([text, *kept])) > budget:
            break
        kept.insert(0, text)
    return "\n".join(kept)


def stored_time(created_at: str) -> datetime | None:
    """A stored time as an aware datetime (UTC when it has no zone); None when unreadable."""
    try:
        then = datetime.fromisoformat(created_at)
    except (TypeError, ValueError):
        return None
    return then if then.tzinfo else then.replace(tzinfo=timezone.utc)


def describe_age(created_at: str, now: datetime) -> str:
    """How long ago, in words: 'just now', '5 minutes ago', '3 days ago'."""
    then = stored_time(created_at)
    if then is None:
        return "some time ago"
    seconds = max(0, (now - then).total_seconds())
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800),
                       ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


LONG_SILENCE_SECONDS = 6 * 3600   # a pause this long is said in the prompt ("3 days later")


TIME_LINE = "Current date and time: "
TIME_FORMAT = "%A %d %B %Y, %H:%M"
TIME_SHOWN = re.compile(re.escape(TIME_LINE) + r"([^.\n]+)")


def time_text(now: datetime, last_message_at: str | None) -> str:
    """The current local date and time, and how long since the last message when that is long."""
    text = TIME_LINE + now.strftime(TIME_FORMAT)
    if last_message_at:
        age = describe_age(last_message_at, now)
        try:
            then = datetime.fromisoformat(last_message_at)
            then = then if then.tzinfo else then.replace(tzinfo=timezone.utc)
            long = (now - then).total_seconds() >= LONG_SILENCE_SECONDS
        except ValueError:
            long = False
        if long:
            text += f". Time since the last message: {age.removesuffix(' ago')}."
    return text


def time_shown(history: list[Turn], now: datetime) -> datetime | None:
    """The newest date and time a note in the history tells (as time_text wrote it, read in now's
    timezone); None when none does."""
    for turn in reversed(history):
        found = TIME_SHOWN.search(turn.note) if turn.note else None
        if found:
            try:
                return datetime.strptime(found.group(1).strip(), TIME_FORMAT).replace(tzinfo=now.tzinfo)
            except ValueError:
                return None
    return None


def time_still_shown(p: PromptInput, now: datetime) -> bool:
    """Whether a note in the prompt's history already tells the time well enough: on the same day,
    less than time_refresh_minutes ago. The line is then left out of the new note, so a warm turn
    reads only its message (the line is ~20 tokens the model reads every turn otherwise, and every
    note kept in the window repeats it); a long pause always tells it again."""
    if p.time_refresh_minutes <= 0:
        return False
    shown = time_shown(p.history, now)
    if shown is None or shown.date() != now.date():
        return False
    return 0 <= (now - shown).total_seconds() < p.time_refresh_minutes * 60


def memory_date(created_at: str, now: datetime) -> str:
    """A memory's day in now's timezone ('12 November 2026'); empty when the time is unreadable."""
    then = stored_time(created_at)
    if then is None:
        return ""
    return (then.astimezone(now.tzinfo) if now.tzinfo else then).strftime("%-d %B %Y")


def memories_text(memories: list[Recalled], now: datetime) -> str:
    """Recalled memories as the prompt tells them, each with its age and date, and, when there are
    several, that the newer of two that disagree holds (placeholders unresolved)."""
    lines = []
    for m in memories:
        day = memory_date(m.created_at, now)
        lines.append(f"- ({describe_age(m.created_at, now)}{', ' + day if day else ''}) {m.text.strip()}")
    head = "{{char}} remembers from earlier conversations"
    head += " (where two disagree, the newer one is true now):" if len(memories) > 1 else ":"
    return head + "\n" + "\n".join(lines)


def with_text_before_newest(messages: list[dict], text: str) -> list[dict]:
    """A client's chat messages with text in a system message of its own just before the newest
    user message: the volatile part of the prompt near its end, as the daemon lays out its own
    prompts, so that the prefix a frontend resends unchanged stays in llama.cpp's cache (placed
    appended to the first system message instead, it is read again every turn: 4.4x the time to
    the first token late in a conversation, bench/client_memory.py)."""
    out = [dict(m) for m in messages]
    newest = max((n for n, m in enumerate(out) if m["role"] == "user"), default=len(out))
    out.insert(newest, {"role": "system", "content": text})
    return out


def note_text(p: PromptInput) -> str:
    """This turn's note (placeholders unresolved): triggered lore, recalled memories, the current
    date and time (and the length of a long pause) unless a note in the window still shows it,
    why the companion writes first, whose turn it is in a group. Kept with the message it goes
    before, later prompts show it there again."""
    if p.note is not None:
        return p.note
    now = p.now or datetime.now(timezone.utc).astimezone()
    parts = [text.strip() for text in p.lore_triggered if text.strip()]
    if p.memories:
        parts.append(memories_text(p.memories, now))
    if not time_still_shown(p, now):
        parts.append(time_text(now, p.last_message_at))
    if p.initiative:
        parts.append(INITIATIVE_NOTE.format(reason=p.initiative))
    if p.group:
        parts.append(GROUP_NOTE)
    return "\n\n".join(parts)


def volatile_text(p: PromptInput) -> str:
    """The part before the newest message: this turn's note, then the card's post-history
    instructions (these only here, not kept with the note), placeholders resolved."""
    parts = [note_text(p)]
    if p.post_history_instructions.strip():
        parts.append(ORIGINAL.sub("", p.post_history_instructions).strip())
    return resolve_placeholders("\n\n".join(part for part in parts if part), p.char, p.user)


INITIATIVE_NOTE = ("{reason} {{{{char}}}} now writes to {{{{user}}}} first: one short, warm message that picks up "
                   "something {{{{char}}}} remembers (a plan {{{{user}}}} mentioned, a day that mattered, or the last "
                   "topic). Write only {{{{char}}}}'s message.")


def build_messages(p: PromptInput) -> list[dict]:
    """The prompt as chat messages ({role, content}), in the cache-friendly layout."""
    messages = [{"role": "system", "content": system_text(p)}]
    for turn in p.history:
        if turn.note:     # as its turn's prompt had it; {{char}}: whom it was for (the reply's speaker)
            char = turn.speaker if turn.ai and turn.speaker else p.char
            messages.append({"role": "system", "content": resolve_placeholders(turn.note, char, p.user)})
        messages.append(turn_message(turn, p.char, p.user, name_companions=bool(p.group)))
    volatile = volatile_text(p)
    if volatile:
        messages.append({"role": "system", "content": volatile})
    if p.newest:      # not when the companion writes first, nor in a group (the history holds it)
        messages.append({"role": "user", "content": resolve_placeholders(p.newest, p.char, p.user)})
    return messages


def turn_message(turn: Turn, char: str, user: str, name_companions: bool = False) -> dict:
    """One history turn as a chat message. A speaker other than the prompt's companion or user
    (another member of a group, an earlier persona) is named in the text, and in "name"; with
    name_companions (a group chat) every companion is, the prompt's own too, so the history
    reads the same whoever speaks next."""
    message = {"role": "assistant" if turn.ai else "user", "content": resolve_placeholders(turn.text, char, user)}
    if turn.speaker and (turn.speaker != (char if turn.ai else user) or (turn.ai and name_companions)):
        message["content"] = f"{turn.speaker}: {message['content']}"
        message["name"] = turn.speaker
    return message


def window_start(n_history: int, short_term_mem: int) -> int:
    """First history index in the window: aligned to blocks of half the window size.

    The window holds at most ``short_term_mem`` messages and at least about half of that;
    its start only moves when a whole block falls out, keeping the prompt prefix stable.
    """
    if short_term_mem <= 0:
        return n_history
    if n_history <= short_term_mem:
        return 0
    block = max(1, short_term_mem // 2)
    overflow = n_history - short_term_mem
    return -(-overflow // block) * block


def fit_history(p: PromptInput, history: list[Turn], short_term_mem: int,
                count_tokens: Callable[[list[dict]], int], budget: int,
                kept_from: int = 0) -> tuple[list[dict], int]:
    """Choose the history window that fits the token budget; returns (messages, start).

    Starts from the aligned short-term window, or from kept_from (where the window started
    last, the chat's stored start) when that is later: the window never moves back, and what
    left it stays out. Drops blocks of half the window from the oldest end while more than a
    block is left; when it must drop further, it finds the first start that fits and then drops
    half of what is left after it at once, so the start stays put for the next turns instead of
    sliding one message a turn (each slide re-reads the whole window). Raises ValueError when
    even the prompt without history is too long.
    """
    start = max(window_start(len(history), short_term_mem), min(kept_from, len(history)))
    block = max(1, short_term_mem // 2)
    sliding = False
    while True:
        p.history = history[start:]
        messages = build_messages(p)
        if count_tokens(messages) <= budget:
            break
        if start >= len(history):
            raise ValueError("the prompt is too long for the model's context window")
        remaining = len(history) - start
        if remaining > block:
            start += block
        else:
            start += 1
            sliding = True
    if sliding and (rest := (len(history) - start) // 2):
        start += rest
        p.history = history[start:]
        messages = build_messages(p)
    return messages, start
