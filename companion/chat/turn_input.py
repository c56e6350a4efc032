"""What a turn's prompt is built from, as pure functions of explicit inputs: the names the
placeholders stand for, a companion and persona as a PromptInput, the history as turns named
after their speakers, and how an exchange is remembered."""

from __future__ import annotations

from typing import Any, Mapping

from companion.chat.prompt import PromptInput, Turn, resolve_placeholders
from companion.formats.cards import char_name
from companion.store.rows import MessageRow


def exchange_text(user_text: str, reply_text: str) -> str:
    """How one exchange is remembered; placeholders resolve when it is recalled."""
    return f"{{{{user}}}}: {user_text}\n{{{{char}}}}: {reply_text}"


USER_LINE, CHAR_LINE = "{{user}}: ", "\n{{char}}: "    # how exchange_text writes the two lines


def memory_parts(text: str) -> list[str]:
    """What a memory says: an exchange's user line and reply, else its whole text."""
    if text.startswith(USER_LINE):
        user_text, between, reply = text[len(USER_LINE):].partition(CHAR_LINE)
        return [user_text, reply] if between else [user_text]
    return [text]


def folded(text: str) -> str:
    """A text for comparing: case folded, runs of white space one space."""
    return " ".join(text.casefold().split())


def said_in(memory_text: str, messages: list[dict], char: str, user: str) -> bool:
    """Whether a memory is already in a client's chat messages: each of its parts (an exchange's
    user line and reply, else its whole text), placeholders resolved, found in their contents,
    case and spacing aside."""
    said = "\n".join(folded(m.get("content") or "") for m in messages)
    parts = [folded(resolve_placeholders(part, char, user)) for part in memory_parts(memory_text)]
    parts = [part for part in parts if part]
    return bool(parts) and all(part in said for part in parts)


INITIATIVE_QUERY = "plans, appointments and days that matter coming up, and how things went"


def initiative_query(history: list[MessageRow]) -> str:
    """What a companion that writes first recalls by: the person's last words and their plans."""
    last = next((m["text"] for m in reversed(history) if not m["ai"]), "")
    return f"{last}\n{INITIATIVE_QUERY}".strip()


def recall_query(history: list[MessageRow], newest: str = "", answered: str = "", group: bool = False) -> str:
    """What a turn recalls by: the new message; in a group, the user's message the reply answers
    (else the last message); a companion writing first, the person's last words and plans."""
    if newest or answered:
        return newest or answered
    if group and history:
        return history[-1]["text"]
    return initiative_query(history)


def remembered(messages: list[MessageRow]) -> list[tuple[str, int, int | None, str]]:
    """How stored messages are remembered when a history is imported, as in a live chat: a user
    message and the reply after it as one exchange, a user message without a reply on its own,
    and a companion's message that answers nobody (a greeting) not at all; as (memory text, user
    message id, reply id, when it was said)."""
    out: list[tuple[str, int, int | None, str]] = []
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


def prompt_input(companion: Mapping[str, Any], user: Mapping[str, Any], newest: str,
                 tuning_example: tuple[str, str] | None = None) -> PromptInput:
    """The stable parts of a companion's prompt (card, persona, examples) and the newest message."""
    card = companion.get("card") or {}
    return PromptInput(
        char=char_name(companion), user=user["name"], persona=companion["persona"],
        personality=companion["personality"] or "", scenario=companion["scenario"] or "",
        user_persona=user["persona"], example_dialogue=companion["example_dialogue"],
        roleplay=companion["roleplay"], tuning_example=tuning_example, newest=newest,
        system_prompt=card.get("system_prompt") or "",
        post_history_instructions=card.get("post_history_instructions") or "")


def history_turns(history: list[MessageRow], companion_names: dict[int, str],
                  user_names: dict[int, str], notes: dict[int, str] | None = None) -> list[Turn]:
    """The history as prompt turns, each named after its speaker: a companion (by id in
    companion_names) or a persona (user_names); "" where the speaker is unknown; each with the
    note its turn's prompt put before it (notes, by message id), if any."""
    notes = notes or {}
    turns = []
    for message in history:
        if message["ai"]:
            speaker = companion_names.get(message["companion_id"] or 0, "")
        else:
            speaker = user_names.get(message["user_id"] or 0, "")
        turns.append(Turn(message["ai"], message["text"], speaker, notes.get(message["id"], "")))
    return turns
