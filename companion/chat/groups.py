"""Groups: named sets of companions with their own chats, and who replies in a group turn.

A group has two or more members in order, some muted, each with a talkativeness (its card's
`extensions.talkativeness` as SillyTavern keeps it, or the group's own), and an activation
strategy: `natural` (members named in the last message first, then each other member by its
talkativeness, at least one), `list` (every unmuted member once, in order) or `manual` (only
the member asked for).
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, List

from companion.errors import BadRequest, NotFound
from companion.formats.cards import char_name
from companion.store import Store
from companion.store.rows import ChatRow, CompanionRow

STRATEGIES = ("natural", "list", "manual")
DEFAULT_TALKATIVENESS = 0.5
MAX_MEMBERS = 16
GROUP_FIELDS = {"name", "members", "strategy", "preset_id"}


def talkativeness(member: dict, companion: CompanionRow) -> float:
    """How likely a member speaks up unasked (0..1): the group's value, else its card's, else 0.5."""
    if member.get("talkativeness") is not None:
        return float(member["talkativeness"])
    value = ((companion.get("card") or {}).get("extensions") or {}).get("talkativeness")
    if value is None:
        return DEFAULT_TALKATIVENESS
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return DEFAULT_TALKATIVENESS


def mentioned(text: str, names: dict[int, list[str]]) -> list[int]:
    """The members named in a text (whole words, any case), in the order they are named first."""
    found: list[tuple[int, int]] = []
    for companion_id, aliases in names.items():
        positions = [m.start() for alias in aliases if alias
                     for m in re.finditer(rf"(?<!\w){re.escape(alias)}(?!\w)", text, re.IGNORECASE)]
        if positions:
            found.append((min(positions), companion_id))
    return [companion_id for _, companion_id in sorted(found)]


def choose_speakers(strategy: str, members: list[dict], names: dict[int, list[str]], chances: dict[int, float],
                    last_text: str, last_speaker: int | None, rng: random.Random) -> list[int]:
    """Who replies in a group turn, in order (pure: the random draws come from rng).

    natural: members named in the last message first (in the order named), then each other
    unmuted member with its talkativeness as the chance; the member who spoke last does not
    reply to itself unless named; at least one member replies. list: every unmuted member once.
    manual: nobody (a member is asked for by name)."""
    unmuted = [m["companion_id"] for m in members if not m.get("muted")]
    if strategy == "manual" or not unmuted:
        return []
    if strategy == "list":
        return unmuted
    chosen = [c for c in mentioned(last_text, names) if c in unmuted]
    for companion_id in unmuted:
        if companion_id in chosen or companion_id == last_speaker:
            continue
        if rng.random() < chances.get(companion_id, DEFAULT_TALKATIVENESS):
            chosen.append(companion_id)
    if not chosen:
        candidates = [c for c in unmuted if c != last_speaker] or unmuted
        chosen = [rng.choice(candidates)]
    return chosen


class GroupService:
    """Groups: create, list, change, delete, activate; their chats; who replies."""

    def __init__(self, store: Store, rng: random.Random | None = None) -> None:
        self.store = store
        self.rng = rng or random.Random()
        self.chats_deleted: Callable[[list[int]], None] | None = None   # told deleted chats' ids

    def get(self, group_id: int) -> dict:
        group = self.store.get_group(group_id)
        if group is None:
            raise NotFound(f"no group with id {group_id}")
        return group

    def list(self, limit: int, offset: int) -> tuple[list[dict], int]:
        return self.store.list_groups(limit, offset)

    def _checked_members(self, members: Any) -> List[dict]:
        """Members as given ([id, ...] or [{companion_id, muted, talkativeness}, ...]), checked."""
        if not isinstance(members, list):
            raise BadRequest("'members' must be a list of companion ids (or {companion_id, muted, talkativeness})")
        if len(members) > MAX_MEMBERS:
            raise BadRequest(f"a group has at most {MAX_MEMBERS} members")
        out: list[dict] = []
        for n, item in enumerate(members):
            member = {"companion_id": item} if not isinstance(item, dict) else dict(item)
            unknown = set(member) - {"companion_id", "muted", "talkativeness"}
            if unknown:
                raise BadRequest(f"members[{n}]: unknown field(s) {', '.join(sorted(unknown))}")
            companion_id = member.get("companion_id")
            if isinstance(companion_id, bool) or not isinstance(companion_id, int):
                raise BadRequest(f"members[{n}]: companion_id must be an integer")
            if self.store.get_companion(companion_id) is None:
                raise BadRequest(f"members[{n}]: no companion with id {companion_id}")
            if not isinstance(member.get("muted", False), bool):
                raise BadRequest(f"members[{n}]: muted must be true or false")
            chance = member.get("talkativeness")
            if chance is not None and (isinstance(chance, bool) or not isinstance(chance, (int, float))
                                       or not 0 <= chance <= 1):
                raise BadRequest(f"members[{n}]: talkativeness must be a number from 0 to 1")
            out.append({"companion_id": companion_id, "muted": bool(member.get("muted", False)),
                        "talkativeness": None if chance is None else float(chance)})
        ids = [m["companion_id"] for m in out]
        if len(set(ids)) != len(ids):
            raise BadRequest("a companion can be a member of a group only once")
        if len(ids) < 2:
            raise BadRequest("a group needs at least two members")
        if all(m["muted"] for m in out):
            raise BadRequest("a group needs at least one member that is not muted")
        return out

    def _checked(self, values: dict) -> dict:
        checked: dict = {}
        if "preset_id" in values:
            preset_id = values["preset_id"]
            if preset_id is not None and (isinstance(preset_id, bool) or not isinstance(preset_id, int)
                                          or self.store.get_preset(preset_id) is None):
                raise BadRequest(f"no preset with id {preset_id!r}")
            checked["preset_id"] = preset_id
        if "name" in values:
            name = values["name"]
            if not isinstance(name, str) or not name.strip() or len(name) > 200:
                raise BadRequest("'name' must be a non-empty string of at most 200 characters")
            checked["name"] = name.strip()
        if "strategy" in values:
            if values["strategy"] not in STRATEGIES:
                raise BadRequest(f"'strategy' must be one of {', '.join(STRATEGIES)}")
            checked["strategy"] = values["strategy"]
        return checked

    def create(self, body: dict) -> dict:
        """A new group ({name, members, strategy?}) with its first chat."""
        unknown = set(body) - GROUP_FIELDS
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "name" not in body:
            raise BadRequest("'name' is required")
        values = self._checked(body)
        members = self._checked_members(body.get("members"))
        return self.get(self.store.create_group(values["name"], values.get("strategy", "natural"), members,
                                               values.get("preset_id")))

    def update(self, group_id: int, body: dict) -> dict:
        """Change a group's name, strategy, preset or members (its chats follow the new members)."""
        self.get(group_id)
        unknown = set(body) - GROUP_FIELDS
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
        values = self._checked(body)
        members = self._checked_members(body["members"]) if "members" in body else None
        self.store.update_group(group_id, values, members)
        return self.get(group_id)

    def delete(self, group_id: int) -> List[int]:
        """Delete a group, its chats and what its members remember of them; returns the memory
        ids to take out of the index."""
        self.get(group_id)
        chats, _ = self.store.list_chats(None, 10**6, 0, group_id=group_id)
        message_ids = [m["id"] for chat in chats for m in self.store.messages(chat["id"])]
        memory_ids = [m["id"] for m in self.store.memories_of_messages(message_ids)]
        with self.store.transaction():
            self.store.delete_memories(memory_ids)
            if self.store.get_state("active_group_id") == str(group_id):
                self.store.set_state("active_group_id", "")
            self.store.delete_group(group_id)
        if self.chats_deleted is not None:
            self.chats_deleted([chat["id"] for chat in chats])
        return memory_ids

    def activate(self, group_id: int) -> dict:
        """Make a group the one the page talks to (instead of a single companion)."""
        self.get(group_id)
        self.store.set_state("active_group_id", group_id)
        return self.get(group_id)

    def active_group_id(self) -> int | None:
        value = self.store.get_state("active_group_id")
        return int(value) if value else None

    def member_names(self, group: dict) -> dict[int, str]:
        """The members' names by companion id."""
        rows = {m["companion_id"]: self.store.get_companion(m["companion_id"]) for m in group["members"]}
        return {companion_id: row["name"] if row else "" for companion_id, row in rows.items()}

    def chats(self, group_id: int, limit: int, offset: int) -> tuple[List[ChatRow], int]:
        """A page of a group's chats, newest first, and how many it has."""
        self.get(group_id)
        return self.store.list_chats(None, limit, offset, group_id=group_id)

    def new_chat(self, group_id: int, title: str = "") -> int:
        self.get(group_id)
        return self.store.create_group_chat(group_id, title)

    def chat_of(self, group_id: int, chat_id: int | None) -> int:
        """A chat of the group (404 when it is another's); its active chat when None."""
        group = self.get(group_id)
        if chat_id is None:
            chat_id = group["active_chat_id"]
            if chat_id is None or self.store.get_chat(chat_id) is None:
                chat_id = self.store.create_group_chat(group_id)
            return chat_id
        chat = self.store.get_chat(chat_id)
        if chat is None or chat["group_id"] != group_id:
            raise NotFound(f"group {group_id} has no chat with id {chat_id}")
        return chat_id

    def speakers(self, group_id: int, chat_id: int, asked: int | None = None, text: str | None = None) -> List[int]:
        """Who replies next in a group chat: the member asked for, or by the group's strategy
        (after the user's new text when there is one, else after the chat's last message)."""
        group = self.get(group_id)
        ids = [m["companion_id"] for m in group["members"]]
        if asked is not None:
            if asked not in ids:
                raise BadRequest(f"companion {asked} is not a member of group {group_id}")
            return [asked]
        companions = {c: self.store.get_companion(c) for c in ids}
        names = {c: [row["name"], char_name(row)] for c, row in companions.items() if row}
        chances = {m["companion_id"]: talkativeness(m, companions[m["companion_id"]])  # type: ignore[arg-type]
                   for m in group["members"]}
        last = self.store.messages(chat_id, limit=1)
        last_text = text if text is not None else last[-1]["text"] if last else ""
        last_speaker = last[-1]["companion_id"] if text is None and last and last[-1]["ai"] else None
        return choose_speakers(group["strategy"], group["members"], names, chances, last_text, last_speaker,
                               self.rng)
