"""The rows the store returns: typed, with their JSON columns decoded."""

from __future__ import annotations

import json
from typing import TypedDict

COMPANION_FIELDS = (
    "name", "persona", "personality", "scenario", "example_dialogue", "first_message",
    "long_term_mem", "short_term_mem", "roleplay", "dialogue_tuning", "avatar", "card", "generation",
    "card_lorebook_id", "active_chat_id", "initiative", "preset_id",
)
JSON_FIELDS = ("card", "generation", "initiative")


class MessageRow(TypedDict):
    """A stored message: its chosen text, its swipes (alternatives, decoded) and its speaker."""
    id: int
    chat_id: int
    ai: bool
    text: str
    greeting: bool
    created_at: str
    swipes: list[str]          # empty when the message has no alternatives
    swipe_id: int
    companion_id: int | None   # the companion who said it (ai)
    user_id: int | None        # the user persona who said it (not ai)
    initiated: bool            # the companion wrote it first, not in reply


class ChatRow(TypedDict):
    """A stored chat, with its member companions in order (the first is its companion)."""
    id: int
    companion_id: int
    title: str
    created_at: str
    window_start_id: int | None
    summarized_through: int
    story_so_far: bool
    story: str
    members: list[int]
    group_id: int | None       # a group chat's group


class CompanionRow(TypedDict):
    """A stored companion: its card's columns, settings (booleans as bool), card and generation decoded."""
    id: int
    name: str
    persona: str
    personality: str
    scenario: str
    example_dialogue: str
    first_message: str
    long_term_mem: int
    short_term_mem: int
    roleplay: bool
    dialogue_tuning: bool
    avatar: str | None
    card: dict
    generation: dict
    card_lorebook_id: int | None
    active_chat_id: int | None
    initiative: dict           # writing first: {"enabled": bool, ...[initiative] settings of its own}
    preset_id: int | None      # the generation preset it uses
    created_at: str
    updated_at: str


def companion_row(row: dict) -> CompanionRow:
    """A companions row decoded: booleans as bool, card and generation as dicts."""
    for key in JSON_FIELDS:
        row[key] = json.loads(row[key] or "{}")
    for key in ("roleplay", "dialogue_tuning"):
        row[key] = bool(row[key])
    return row  # type: ignore[return-value]


class PresetRow(TypedDict):
    """A stored generation preset: its settings (some of GenerationSettings') and the SillyTavern keys kept."""
    id: int
    name: str
    settings: dict
    extra: dict                # a SillyTavern preset's keys we do not use, for export
    builtin: bool
    created_at: str
    updated_at: str


def preset_row(row: dict) -> PresetRow:
    """A presets row decoded."""
    row["settings"] = json.loads(row["settings"] or "{}")
    row["extra"] = json.loads(row["extra"] or "{}")
    row["builtin"] = bool(row["builtin"])
    return row  # type: ignore[return-value]


def message_row(row: dict) -> MessageRow:
    """A messages row decoded: booleans as bool, swipes as a list."""
    row["ai"] = bool(row["ai"])
    row["greeting"] = bool(row["greeting"])
    row["initiated"] = bool(row["initiated"])
    row["swipes"] = json.loads(row["swipes"] or "[]")
    return row  # type: ignore[return-value]
