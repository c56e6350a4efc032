"""The companion and user-persona service: data, avatar, character cards in and out."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path

from .cards import CardError, read_card
from .config import GenerationSettings
from .errors import BadRequest, NotFound
from .images import ImageError, avatar_png, open_image
from .store import Store

log = logging.getLogger(__name__)

AVATAR_PATH = "/assets/avatar.png"


class CompanionService:
    """The active companion and user persona, as the AI Companion API sees them."""

    def __init__(self, store: Store, avatars_dir: Path) -> None:
        self.store = store
        self.avatars_dir = Path(avatars_dir)

    def companion(self) -> dict:
        """The active companion's row (card data included)."""
        return self.store.get_companion(self.store.active_companion_id())

    def user(self) -> dict:
        """The active user persona's row."""
        return self.store.get_user(self.store.active_user_id())

    def update_companion(self, fields: dict) -> None:
        """Change fields of the active companion; a new first message also replaces the greeting."""
        companion = self.companion()
        with self.store.transaction():
            self.store.update_companion(companion["id"], fields)
            if "first_message" in fields:
                self._replace_greeting(companion["id"], fields["first_message"])

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

    def update_user(self, fields: dict) -> None:
        """Change fields (name, persona) of the active user persona."""
        self.store.update_user(self.user()["id"], fields)

    # avatar --------------------------------------------------------------------------------

    def set_avatar(self, data: bytes) -> None:
        """Make an uploaded image the active companion's avatar."""
        try:
            png = avatar_png(open_image(data))
        except ImageError as exc:
            raise BadRequest(str(exc)) from None
        self._change_avatar(png, {})

    def _change_avatar(self, png: bytes | None, fields: dict, new_chat: bool = False) -> None:
        """Update the active companion, with a new avatar file under a generated name.

        The new file is written first and the old one removed only once the row points to
        the new one, so a failure leaves the companion with a working avatar.
        """
        companion = self.companion()
        name = None
        if png is not None:
            self.avatars_dir.mkdir(parents=True, exist_ok=True)
            name = f"{uuid.uuid4().hex}.png"
            (self.avatars_dir / name).write_bytes(png)
            fields = {**fields, "avatar": name}
        try:
            with self.store.transaction():
                self.store.update_companion(companion["id"], fields)
                if new_chat:
                    self.store.create_chat(companion["id"])
        except Exception:
            if name:
                (self.avatars_dir / name).unlink(missing_ok=True)
            raise
        if name and companion.get("avatar"):
            (self.avatars_dir / Path(companion["avatar"]).name).unlink(missing_ok=True)

    def avatar_file(self) -> Path | None:
        """The active companion's avatar file, or None for the default avatar."""
        name = self.companion().get("avatar")
        if not name:
            return None
        path = self.avatars_dir / Path(name).name
        return path if path.is_file() else None

    # character cards -----------------------------------------------------------------------

    def import_card(self, data: bytes) -> dict:
        """Replace the active companion with a character card (PNG/WebP/JPEG or JSON bytes)."""
        try:
            card = read_card(data)
        except CardError as exc:
            raise BadRequest(str(exc)) from None
        try:
            avatar = avatar_png(open_image(data))
        except ImageError:  # a JSON card: no picture
            avatar = None
        return self._become(card, avatar)

    def import_character_json(self, card: dict) -> dict:
        """Replace the active companion with the fields of a character JSON."""
        return self._become(card, None)

    def _become(self, card: dict, avatar: bytes | None) -> dict:
        """Make the active companion this character, in a new chat that opens with its greeting."""
        fields = {
            "name": card["name"].strip(),
            "persona": card.get("description", ""),
            "personality": card.get("personality", ""),
            "scenario": card.get("scenario", ""),
            "first_message": card.get("first_mes", ""),
            "example_dialogue": card.get("mes_example", ""),
            "card": card,
        }
        self._change_avatar(avatar, fields, new_chat=True)
        log.info("imported character %r", fields["name"])
        return self.companion()

    def character_json(self) -> dict:
        """The active companion as {name, description, first_mes, mes_example}."""
        companion = self.companion()
        return {"name": companion["name"], "description": companion["persona"],
                "first_mes": companion["first_message"], "mes_example": companion["example_dialogue"]}

    # generation settings -------------------------------------------------------------------

    def _get(self, companion_id: int) -> dict:
        companion = self.store.get_companion(companion_id)
        if companion is None:
            raise NotFound(f"no companion with id {companion_id}")
        return companion

    def generation(self, companion_id: int, defaults: GenerationSettings) -> dict:
        """A companion's generation settings: the defaults, its own, and what applies."""
        own = self._get(companion_id)["generation"]
        base = dataclasses.asdict(defaults)
        return {"companion_id": companion_id, "defaults": base, "companion": own, "effective": {**base, **own}}

    def set_generation(self, companion_id: int, values: dict, removed: list[str]) -> None:
        """Change a companion's own generation settings; removed keys fall back to the defaults."""
        own = dict(self._get(companion_id)["generation"])
        own.update(values)
        for key in removed:
            own.pop(key, None)
        self.store.update_companion(companion_id, {"generation": own})
