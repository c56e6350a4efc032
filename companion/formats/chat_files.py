"""Chats out and in: our JSON, SillyTavern's .jsonl chat file, a readable transcript, CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from companion.errors import InvalidInput
from companion.formats import jsontext

FORMATS = ("json", "jsonl", "txt", "csv")
MEDIA_TYPES = {"json": "application/json", "jsonl": "application/jsonl", "txt": "text/plain",
               "csv": "text/csv"}


class ChatFileError(InvalidInput):
    """A chat file that cannot be read."""


@dataclass
class ChatLine:
    """One message of a chat file."""
    ai: bool
    text: str
    swipes: list[str] = field(default_factory=list)
    swipe_id: int = 0
    date: str = ""
    name: str = ""        # who said it (a persona's or a companion's name); empty: the chat's user or character


def speaker(line: ChatLine, char: str, user: str) -> str:
    """The name a chat file gives a message's speaker."""
    return line.name or (char if line.ai else user)


def export_chat(fmt: str, chat: Mapping[str, Any], char: str, user: str, lines: list[ChatLine]) -> str:
    """A chat in one of FORMATS; texts as shown (placeholders resolved by the caller); each
    message named after its speaker (line.name) or else the chat's char or user."""
    for line in lines:
        line.name = line.name or (char if line.ai else user)
    if fmt == "json":
        return json.dumps({"chat": {"id": chat["id"], "title": chat["title"], "created_at": chat["created_at"]},
                           "character_name": char, "user_name": user,
                           "messages": [{"ai": m.ai, "name": m.name, "text": m.text, "swipes": m.swipes,
                                         "swipe_id": m.swipe_id, "date": m.date} for m in lines]},
                          ensure_ascii=False, indent=1)
    if fmt == "jsonl":
        out = [json.dumps({"user_name": user, "character_name": char, "create_date": chat["created_at"],
                           "chat_metadata": {}}, ensure_ascii=False)]
        for m in lines:
            entry = {"name": speaker(m, char, user), "is_user": not m.ai, "is_system": False,
                     "send_date": m.date, "mes": m.text, "extra": {}}
            if m.ai:
                entry["swipes"] = m.swipes or [m.text]
                entry["swipe_id"] = m.swipe_id if m.swipes else 0
            out.append(json.dumps(entry, ensure_ascii=False))
        return "\n".join(out) + "\n"
    if fmt == "txt":
        head = f"Chat with {char}" + (f": {chat['title']}" if chat["title"] else "") + f" ({chat['created_at']})"
        return head + "\n\n" + "\n\n".join(f"{speaker(m, char, user)}: {m.text}" for m in lines) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["date", "speaker", "ai", "text"])
        for m in lines:
            writer.writerow([m.date, speaker(m, char, user), "true" if m.ai else "false", m.text])
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}")


def _str(value, where: str) -> str:
    if not isinstance(value, str):
        raise ChatFileError(f"{where} must be text")
    return value


def parse_chat(data: bytes) -> tuple[str, list[ChatLine]]:
    """(title, messages) from a SillyTavern .jsonl chat or our JSON export."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChatFileError("the chat file is not UTF-8 text") from None
    if not text.strip():
        raise ChatFileError("the chat file is empty")
    try:
        whole = jsontext.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("messages"), list):
        lines = []
        for n, m in enumerate(whole["messages"]):
            if not isinstance(m, dict) or not isinstance(m.get("ai"), bool):
                raise ChatFileError(f"messages[{n}] needs 'ai' (true or false) and 'text'")
            swipes = m.get("swipes") or []
            if not isinstance(swipes, list) or not all(isinstance(x, str) for x in swipes):
                raise ChatFileError(f"messages[{n}].swipes must be a list of texts")
            lines.append(ChatLine(m["ai"], _str(m.get("text"), f"messages[{n}].text"), swipes,
                                  _swipe_id(m.get("swipe_id"), swipes), str(m.get("date") or ""),
                                  str(m.get("name") or "")))
        title = (whole.get("chat") or {}).get("title") or "" if isinstance(whole.get("chat"), dict) else ""
        return title, lines
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append(jsontext.loads(raw))
        except json.JSONDecodeError:
            raise ChatFileError(f"line {number} is not JSON: a SillyTavern chat is one JSON object a line") from None
    if not rows or not isinstance(rows[0], dict):
        raise ChatFileError("not a chat file")
    body = rows[1:] if "mes" not in rows[0] else rows
    lines = []
    for n, entry in enumerate(body, start=2 if body is not rows else 1):
        if not isinstance(entry, dict) or "mes" not in entry:
            raise ChatFileError(f"line {n} has no 'mes'")
        if entry.get("is_system"):
            continue
        swipes = entry.get("swipes") or []
        if not isinstance(swipes, list) or not all(isinstance(x, str) for x in swipes):
            raise ChatFileError(f"line {n}: swipes must be a list of texts")
        lines.append(ChatLine(not entry.get("is_user"), _str(entry["mes"], f"line {n}: mes"), swipes,
                              _swipe_id(entry.get("swipe_id"), swipes), str(entry.get("send_date") or ""),
                              str(entry.get("name") or "")))
    return "", lines


def _swipe_id(value, swipes: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < max(1, len(swipes)):
        return value
    return 0
