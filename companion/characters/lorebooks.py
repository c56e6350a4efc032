"""The lorebook service: import, list, edit entries, delete, attach to companions, activate.

A lorebook is stored as the JSON of its own format (a card's character_book, a SillyTavern
world info file or a V3 lorebook), so it exports as it came in; edits go through lore.py.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List

from companion.characters.lore import (
    ActivatedEntry,
    Lorebook,
    LoreEntry,
    LoreError,
    activate,
    export_lorebook,
    parse_lorebook,
    parse_lorebook_bytes,
    to_character_book,
)
from companion.errors import BadRequest, NotFound
from companion.store import Store

ENTRY_FIELDS = ("keys", "secondary_keys", "content", "comment", "constant", "selective",
                "insertion_order", "enabled", "position", "case_sensitive")
BOOK_FIELDS = ("name", "description", "scan_depth", "token_budget")


def entry_json(index: int, entry: LoreEntry) -> dict:
    """One entry as the REST API shows it (its index is its id within the book)."""
    return {"index": index, "id": entry.id, **{f: getattr(entry, f) for f in ENTRY_FIELDS}}


class LorebookService:
    """Lorebooks, their entries, and which companions use them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, lorebook_id: int) -> dict:
        row = self.store.get_lorebook(lorebook_id)
        if row is None:
            raise NotFound(f"no lorebook with id {lorebook_id}")
        return row

    @staticmethod
    def book(row: dict) -> Lorebook:
        return parse_lorebook(row["data"])

    def list(self, limit: int, offset: int) -> tuple[list[dict], int]:
        return self.store.list_lorebooks(limit, offset), self.store.count("lorebooks")

    def add(self, book: Lorebook, name: str = "") -> dict:
        """Store a parsed lorebook (named after the file when it has no name of its own)."""
        label = book.name or name or "Lorebook"
        return self.get(self.store.add_lorebook(label, book.source_format, export_lorebook(book)))

    def import_bytes(self, data: bytes, name: str = "") -> dict:
        """A lorebook file (SillyTavern world info, V3 lorebook or a character_book) in."""
        book = parse_lorebook_bytes(data)
        return self.add(book, name)

    def create(self, fields: dict, entries: List) -> dict:
        """A new lorebook from a name, settings and entries in character_book form."""
        book = parse_lorebook({**fields, "entries": entries})
        return self.add(book)

    def _save(self, lorebook_id: int, book: Lorebook) -> dict:
        label = book.name or self.get(lorebook_id)["name"]
        self.store.set_lorebook(lorebook_id, label, export_lorebook(book))
        return self.get(lorebook_id)

    def update(self, lorebook_id: int, fields: dict) -> dict:
        """Change book-level fields (name, description, scan_depth, token_budget)."""
        book = self.book(self.get(lorebook_id))
        checked = self._checked({"entries": [], **fields})
        for key in fields:
            setattr(book, key, getattr(checked, key))
        return self._save(lorebook_id, book)

    @staticmethod
    def _checked(obj: dict) -> Lorebook:
        return parse_lorebook(obj)

    def _entry(self, book: Lorebook, index: int) -> LoreEntry:
        if not 0 <= index < len(book.entries):
            raise NotFound(f"no entry {index} in this lorebook")
        return book.entries[index]

    def add_entry(self, lorebook_id: int, fields: dict) -> tuple[dict, int]:
        """Append an entry (character_book field names); returns (row, its index)."""
        book = self.book(self.get(lorebook_id))
        entry = self._checked({"entries": [fields]}).entries[0]
        book.entries.append(entry)
        return self._save(lorebook_id, book), len(book.entries) - 1

    def update_entry(self, lorebook_id: int, index: int, fields: dict) -> dict:
        """Change some fields of an entry; the others (unknown keys too) stay as they were."""
        book = self.book(self.get(lorebook_id))
        entry = self._entry(book, index)
        current = {f: getattr(entry, f) for f in ENTRY_FIELDS}
        checked = self._checked({"entries": [{**current, **fields}]}).entries[0]
        book.entries[index] = dataclasses.replace(entry, **{f: getattr(checked, f) for f in fields})
        return self._save(lorebook_id, book)

    def delete_entry(self, lorebook_id: int, index: int) -> dict:
        book = self.book(self.get(lorebook_id))
        self._entry(book, index)
        del book.entries[index]
        return self._save(lorebook_id, book)

    def delete(self, lorebook_id: int) -> None:
        self.get(lorebook_id)
        self.store.delete_lorebook(lorebook_id)

    def export(self, lorebook_id: int, fmt: str | None) -> dict:
        """The lorebook in its own format, or in 'character_book', 'sillytavern' or 'lorebook_v3'."""
        try:
            return export_lorebook(self.book(self.get(lorebook_id)), fmt)
        except (LoreError, ValueError) as exc:
            raise BadRequest(str(exc)) from None

    def of_companion(self, companion_id: int) -> List[int]:
        """The ids of the lorebooks attached to a companion."""
        return self.store.companion_lorebook_ids(companion_id)

    def attach(self, companion_id: int, lorebook_id: int) -> None:
        self.get(lorebook_id)
        self.store.attach_lorebook(companion_id, lorebook_id)

    def detach(self, companion_id: int, lorebook_id: int) -> None:
        self.get(lorebook_id)
        self.store.detach_lorebook(companion_id, lorebook_id)

    def character_book(self, lorebook_id: int | None) -> dict | None:
        """A lorebook as a card's character_book, or None when there is none."""
        row = self.store.get_lorebook(lorebook_id) if lorebook_id else None
        return to_character_book(self.book(row)) if row else None

    def activate(self, companion_id: int, recent_texts: List[str], count_tokens: Callable[[str], int],
                 scan_depth: int, token_budget: int) -> List[tuple[int, ActivatedEntry]]:
        """The entries of a companion's lorebooks that this turn triggers, with their book ids."""
        rows = self.store.companion_lorebooks(companion_id)
        if not rows:
            return []
        chosen = activate([self.book(r) for r in rows], recent_texts, count_tokens, scan_depth, token_budget)
        return [(rows[a.book_index]["id"], a) for a in chosen]
