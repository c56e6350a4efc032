"""Companions and user personas: several of each, one active; avatars; character cards in and out.

A companion's six classic card fields live in columns (``name``, ``persona`` = description,
``personality``, ``scenario``, ``first_message`` = first_mes, ``example_dialogue`` =
mes_example); every other field of its card, unknown keys included, lives in the ``card``
JSON column, so a card comes out as it went in.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, List, Literal

from companion.characters.avatars import AvatarFiles
from companion.characters.lore import LoreError, parse_lorebook
from companion.characters.lorebooks import LorebookService
from companion.characters.presets import preset_settings
from companion.config import GenerationSettings
from companion.errors import BadRequest, Conflict, NotFound
from companion.formats.cards import card_voice, char_name, normalize_card, png_with_card, read_card, to_v3
from companion.formats.images import ImageError, avatar_png, open_image
from companion.memory.recall import LongTermMemory
from companion.store import Store
from companion.store.rows import CompanionRow

log = logging.getLogger(__name__)

AVATAR_PATH = "/assets/avatar.png"
# column -> card field
CardColumn = Literal["name", "persona", "personality", "scenario", "first_message", "example_dialogue"]
CARD_COLUMNS: dict[CardColumn, str] = {"name": "name", "persona": "description", "personality": "personality",
                                       "scenario": "scenario", "first_message": "first_mes",
                                       "example_dialogue": "mes_example"}
SETTING_COLUMNS = ("long_term_mem", "short_term_mem", "roleplay", "dialogue_tuning")


def placeholder_names(store: Store, companion_id: int) -> tuple[str, str]:
    """What {{char}} and {{user}} stand for in a companion's texts: its name, the active persona's."""
    companion = store.get_companion(companion_id)
    if companion is None:
        raise NotFound(f"no companion with id {companion_id}")
    user = store.get_user(store.active_user_id())
    assert user is not None   # the active persona (Store.active_user_id falls back to the first)
    return char_name(companion), user["name"]


def card_of(row: CompanionRow) -> dict:
    """A companion row as a normalized card (columns over the stored card)."""
    card = dict(row.get("card") or {})
    for column, field in CARD_COLUMNS.items():
        card[field] = row[column] or ""
    return normalize_card({"spec": "chara_card_v3", "data": _card_data(card)})


def _card_data(card: dict) -> dict:
    data = {k: v for k, v in card.items() if k not in ("spec", "unknown")}
    data.update(card.get("unknown") or {})
    return data


def columns_of(card: dict) -> dict:
    """The column values of a normalized card."""
    return {column: card[field] for column, field in CARD_COLUMNS.items()}


def with_voice(card: dict, voice: dict) -> dict:
    """The card with a change of its voice setting (extensions.voice; null values removed)."""
    extensions = dict(card.get("extensions") or {})
    merged = {**card_voice(card), **voice}
    merged = {k: v for k, v in merged.items() if v is not None}
    if merged:
        extensions["voice"] = merged
    else:
        extensions.pop("voice", None)
    return {**card, "extensions": extensions}


class CompanionService:
    """Companions and personas; the AI Companion API acts on the active one of each."""

    def __init__(self, store: Store, memory: LongTermMemory, lorebooks: LorebookService,
                 avatars_dir: Path) -> None:
        self.store = store
        self.memory = memory
        self.lorebooks = lorebooks
        self.avatars = AvatarFiles(avatars_dir)
        self.chats_deleted: Callable[[list[int]], None] | None = None   # told deleted chats' ids

    # the active ones -----------------------------------------------------------------------

    def active_companion_id(self) -> int:
        """The companion the AI Companion API and the page act on."""
        return self.store.active_companion_id()

    def active_chat_id(self, companion_id: int | None = None) -> int:
        """A companion's current chat (the active companion's by default), opened if it has none."""
        companion_id = companion_id or self.store.active_companion_id()
        if self.store.get_companion(companion_id) is None:
            raise NotFound(f"no companion with id {companion_id}")
        return self.store.active_chat_id(companion_id)

    def active_user_id(self) -> int:
        """The user persona in use ({{user}})."""
        return self.store.active_user_id()

    def names(self, companion_id: int) -> tuple[str, str]:
        """What {{char}} and {{user}} stand for in a companion's texts."""
        return placeholder_names(self.store, companion_id)

    def companion(self) -> CompanionRow:
        """The active companion's row (card data included)."""
        companion = self.store.get_companion(self.store.active_companion_id())
        assert companion is not None   # the active one (Store.active_companion_id falls back to the first)
        return companion

    def user(self) -> dict:
        """The active user persona's row."""
        user = self.store.get_user(self.store.active_user_id())
        assert user is not None   # the active one (Store.active_user_id falls back to the first)
        return user

    def update_companion(self, fields: dict, companion_id: int | None = None) -> None:
        """Change fields of a companion (the active one by default); a new first message
        also replaces the greeting at the top of its chat."""
        companion_id = companion_id or self.store.active_companion_id()
        with self.store.transaction():
            self.store.update_companion(companion_id, fields)
            if "first_message" in fields:
                self._replace_greeting(companion_id, fields["first_message"])

    def _replace_greeting(self, companion_id: int, text: str) -> None:
        chat_id = self.store.active_chat_id(companion_id)
        first = self.store.messages(chat_id)[:1]
        if first and first[0]["greeting"]:
            if text:
                self.store.set_message_text(first[0]["id"], text)
            else:
                self.store.delete_message(first[0]["id"])
        elif not first:
            self.store.add_greeting(chat_id)

    def update_user(self, fields: dict, user_id: int | None = None) -> None:
        """Change fields (name, persona) of a user persona (the active one by default)."""
        self.store.update_user(user_id or self.store.active_user_id(), fields)

    # companions ----------------------------------------------------------------------------

    def get(self, companion_id: int) -> CompanionRow:
        companion = self.store.get_companion(companion_id)
        if companion is None:
            raise NotFound(f"no companion with id {companion_id}")
        return companion

    def list(self, limit: int, offset: int, q: str = "", tags: list[str] | None = None, sort: str = "created",
             order: str = "asc") -> tuple[list[CompanionRow], int]:
        """A page of the companions that match q and have all the tags (see Store.find_companions)."""
        return self.store.find_companions(q, tags or [], sort, order, limit, offset)

    def create(self, card: dict, settings: dict, avatar: bytes | None = None) -> CompanionRow:
        """A new companion from a normalized card; its first chat opens with its greeting.

        A card's character_book becomes a lorebook attached to the companion."""
        book = card_book(card)
        self._check_preset(settings)
        if "voice" in settings:
            settings = dict(settings)
            card = with_voice(card, settings.pop("voice"))
        name = None
        if avatar is not None:
            name = self.avatars.write(avatar)
        try:
            with self.store.transaction():
                if "initiative" in settings:
                    settings = {**settings, "initiative": {k: v for k, v in settings["initiative"].items()
                                                           if v is not None}}
                companion_id = self.store.create_companion(
                    {**columns_of(card), **settings, "card": _stored_card(card), "avatar": name})
                self._attach_card_book(companion_id, card, book)
        except Exception:
            self.avatars.remove(name)
            raise
        return self.get(companion_id)

    def _attach_card_book(self, companion_id: int, card: dict, book) -> None:
        """Keep a card's lorebook as a lorebook of the companion (replacing an earlier card's)."""
        old = self.get(companion_id).get("card_lorebook_id")
        if old:
            self.store.detach_lorebook(companion_id, old)
            if not self.store.lorebook_in_use(old, besides=companion_id):   # the replaced card's book
                self.store.delete_lorebook(old)
        lorebook_id = None
        if book is not None:
            lorebook_id = self.lorebooks.add(book, f"{card['name']}'s lorebook")["id"]
            self.store.attach_lorebook(companion_id, lorebook_id)
        self.store.update_companion(companion_id, {"card_lorebook_id": lorebook_id})

    def update(self, companion_id: int, card_changes: dict, settings: dict) -> CompanionRow:
        """Change card fields and settings of a companion; the card is checked whole."""
        companion = self.get(companion_id)
        self._check_preset(settings)
        fields = dict(settings)
        if "voice" in fields:        # kept in the card (extensions.voice), so that an exported card speaks alike
            card_changes = {**card_changes, "extensions": with_voice(
                {"extensions": card_changes.get("extensions", card_of(companion).get("extensions"))},
                fields.pop("voice"))["extensions"]}
        if "initiative" in fields:    # a change of some settings; null ones go back to [initiative]'s
            merged = {**companion["initiative"], **fields["initiative"]}
            fields["initiative"] = {k: v for k, v in merged.items() if v is not None}
        if card_changes:
            merged = {**_card_data(card_of(companion)), **card_changes}
            card = normalize_card({"spec": "chara_card_v3", "data": merged})
            fields.update(columns_of(card))
            fields["card"] = _stored_card(card)
        if fields:
            self.update_companion(fields, companion_id)
        return self.get(companion_id)

    def _check_preset(self, settings: dict) -> None:
        """A preset_id among the settings names a preset (404 otherwise; None: no preset)."""
        if settings.get("preset_id") is not None and self.store.get_preset(settings["preset_id"]) is None:
            raise NotFound(f"no preset with id {settings['preset_id']}")

    def delete(self, companion_id: int) -> None:
        """Delete a companion with its chats and memories; the last one cannot go."""
        companion = self.get(companion_id)
        if self.store.count("companions") <= 1:
            raise Conflict("the last companion cannot be deleted")
        groups = self.store.groups_of(companion_id)
        if groups:
            raise Conflict(f"{companion['name']} is a member of the group(s) {', '.join(g['name'] for g in groups)}; "
                           "take it out of them first")
        self.memory.erase(companion_id)
        chat_ids = [chat["id"] for chat in self.store.list_chats(companion_id, 10**6, 0)[0]]
        with self.store.transaction():
            was_active = self.store.active_companion_id() == companion_id
            self.store.delete_companion(companion_id)
            if was_active:
                self.store.set_state("active_companion_id", self.store.list_rows("companions", 1, 0)[0]["id"])
        self.avatars.remove(companion.get("avatar"))
        if self.chats_deleted is not None:
            self.chats_deleted(chat_ids)

    def activate(self, companion_id: int) -> CompanionRow:
        """Make a companion the one the AI Companion API talks to."""
        self.get(companion_id)
        with self.store.transaction():
            self.store.set_state("active_companion_id", companion_id)
            self.store.set_state("active_group_id", "")     # the page talks to one companion again
        return self.get(companion_id)

    # personas ------------------------------------------------------------------------------

    def get_user(self, user_id: int) -> dict:
        user = self.store.get_user(user_id)
        if user is None:
            raise NotFound(f"no persona with id {user_id}")
        return user

    def list_users(self, limit: int, offset: int) -> tuple[List[dict], int]:
        return self.store.list_rows("users", limit, offset), self.store.count("users")

    def create_user(self, name: str, persona: str) -> dict:
        return self.get_user(self.store.create_user(name, persona))

    def patch_user(self, user_id: int, fields: dict) -> dict:
        self.get_user(user_id)
        if fields:
            self.store.update_user(user_id, fields)
        return self.get_user(user_id)

    def delete_user(self, user_id: int) -> None:
        user = self.get_user(user_id)
        if self.store.count("users") <= 1:
            raise Conflict("the last persona cannot be deleted")
        with self.store.transaction():
            was_active = self.store.active_user_id() == user_id
            self.store.delete_user(user_id)
            if was_active:
                self.store.set_state("active_user_id", self.store.list_rows("users", 1, 0)[0]["id"])
        self.avatars.remove(user.get("avatar"))

    def activate_user(self, user_id: int) -> dict:
        self.get_user(user_id)
        self.store.set_state("active_user_id", user_id)
        return self.get_user(user_id)

    def set_user_avatar(self, user_id: int, data: bytes | None) -> dict:
        """Make an uploaded image a persona's avatar (checked and re-encoded as a companion's); None removes it."""
        user = self.get_user(user_id)
        png = avatar_png(open_image(data)) if data is not None else None
        self.avatars.replace(user.get("avatar"), png, lambda name: self.store.update_user(user_id, {"avatar": name}))
        return self.get_user(user_id)

    def user_avatar_png(self, user_id: int, thumb: bool = False) -> bytes:
        """A persona's avatar as PNG bytes (the default picture when it has none)."""
        return self.avatars.png(self.get_user(user_id).get("avatar"), thumb)

    # avatars -------------------------------------------------------------------------------

    def set_avatar(self, data: bytes, companion_id: int | None = None) -> None:
        """Make an uploaded image a companion's avatar (the active one by default)."""
        self._change(companion_id or self.store.active_companion_id(), {}, avatar_png(open_image(data)))

    def _change(self, companion_id: int, fields: dict, png: bytes | None, new_chat: bool = False,
                card: dict | None = None) -> None:
        """Update a companion, with a new avatar file under a generated name.

        The new file is written first and the old one removed only once the row points to
        the new one, so a failure leaves the companion with a working avatar.
        """
        companion = self.get(companion_id)
        book = card_book(card) if card is not None else None
        name = self.avatars.write(png) if png is not None else None
        if name:
            fields = {**fields, "avatar": name}
        try:
            with self.store.transaction():
                self.store.update_companion(companion_id, fields)
                if card is not None:
                    self._attach_card_book(companion_id, card, book)
                if new_chat:
                    self.store.create_chat(companion_id)
        except Exception:
            self.avatars.remove(name)
            raise
        if name:
            self.avatars.remove(companion.get("avatar"))

    def avatar_png(self, companion_id: int | None = None, thumb: bool = False) -> bytes:
        """A companion's avatar as PNG bytes (the default picture when it has none)."""
        companion = self.get(companion_id or self.store.active_companion_id())
        return self.avatars.png(companion.get("avatar"), thumb)

    # character cards -----------------------------------------------------------------------

    @staticmethod
    def parse_card(data: bytes) -> tuple[dict, bytes | None]:
        """A card and its picture (re-encoded) from uploaded bytes; 400 when there is no card."""
        card = read_card(data)
        try:
            picture = avatar_png(open_image(data))
        except ImageError:  # a JSON card: no picture
            picture = None
        return card, picture

    def import_new(self, data: bytes) -> CompanionRow:
        """A new companion from a card file (PNG/WebP/JPEG or JSON)."""
        card, picture = self.parse_card(data)
        companion = self.create(card, {}, picture)
        log.info("imported character %r as companion %d", card["name"], companion["id"])
        return companion

    def import_card(self, data: bytes) -> CompanionRow:
        """Replace the active companion with a character card (the AI Companion API's import)."""
        card, picture = self.parse_card(data)
        return self._become(card, picture)

    def import_character_json(self, card: dict) -> CompanionRow:
        """Replace the active companion with the fields of a character JSON."""
        return self._become(card, None)

    def _become(self, card: dict, avatar: bytes | None) -> CompanionRow:
        """Make the active companion this character, in a new chat that opens with its greeting."""
        companion_id = self.store.active_companion_id()
        self._change(companion_id, {**columns_of(card), "card": _stored_card(card)}, avatar, new_chat=True,
                     card=card)
        log.info("imported character %r", card["name"])
        return self.get(companion_id)

    def card(self, companion_id: int) -> dict:
        """A companion's card, normalized, with its lorebook as the character_book."""
        row = self.get(companion_id)
        card = card_of(row)
        if row.get("card_lorebook_id"):
            card["character_book"] = self.lorebooks.character_book(row["card_lorebook_id"])
        return card

    def card_json(self, companion_id: int) -> dict:
        """A companion as a V3 card object."""
        return to_v3(self.card(companion_id))

    def card_png(self, companion_id: int) -> bytes:
        """A companion's avatar with its card in `ccv3` (V3) and `chara` (V2) chunks."""
        return png_with_card(self.avatar_png(companion_id), self.card(companion_id))

    def character_json(self) -> dict:
        """The active companion as {name, description, first_mes, mes_example}."""
        companion = self.companion()
        return {"name": companion["name"], "description": companion["persona"],
                "first_mes": companion["first_message"], "mes_example": companion["example_dialogue"]}

    # generation settings -------------------------------------------------------------------

    def generation(self, companion_id: int, defaults: GenerationSettings) -> dict:
        """A companion's generation settings: the defaults, its preset's, its own, and what applies."""
        companion = self.get(companion_id)
        base = dataclasses.asdict(defaults)
        preset = preset_settings(self.store, companion["preset_id"])
        return {"companion_id": companion_id, "defaults": base, "preset_id": companion["preset_id"], "preset": preset,
                "companion": companion["generation"], "effective": {**base, **preset, **companion["generation"]}}

    def set_generation(self, companion_id: int, values: dict, removed: List[str]) -> None:
        """Change a companion's own generation settings; removed keys fall back to the defaults."""
        own = dict(self.get(companion_id)["generation"])
        own.update(values)
        for key in removed:
            own.pop(key, None)
        self.store.update_companion(companion_id, {"generation": own})


def _stored_card(card: dict) -> dict:
    """What the card column keeps: the card less the fields that live in columns or lorebooks."""
    return {k: v for k, v in card.items() if k not in CARD_COLUMNS.values() and k != "character_book"}


def card_book(card: dict):
    """A card's character_book parsed as a lorebook (None when it has none); 400 when broken."""
    if not card.get("character_book"):
        return None
    try:
        return parse_lorebook(card["character_book"])
    except LoreError as exc:
        raise BadRequest(f"the card's lorebook: {exc}") from None
