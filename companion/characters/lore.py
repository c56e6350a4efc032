"""Lorebooks ("world info"): read them in the three shapes people share, export them back,
and pick the entries a prompt should carry.

Formats read by :func:`parse_lorebook`:

* ``character_book`` (V2/V3 card spec): ``{"entries": [ {keys, content, ...}, ... ], ...}``,
  also what a card holds under ``data.character_book``.
* SillyTavern world info file: ``{"entries": {"0": {uid, key, keysecondary, order,
  position, disable, ...}, ...}}``.
* V3 standalone lorebook: ``{"spec": "lorebook_v3", "data": {<a character_book>}}``.

Nothing is lost: every key that is not a known field lands in ``extra`` and is written back
by the exporters, and each parsed object remembers how its known fields were spelled in the
source (``origin``), so exporting to the format it came from gives back the same JSON
(``null`` stays ``null``, a comma-separated key string stays a string, absent optional
fields stay absent) unless the field was changed.

SillyTavern ``position`` numbers: 0 = before the character definitions, 1 = after them,
2..7 = author's note top/bottom, @depth, example messages top/bottom, outlet. Only 1 maps to
``"after_char"``; every other number maps to ``"before_char"`` and, when it is neither 0 nor
1, the number is also kept in ``extra["position"]`` so a later prompt builder can honour it.

Every bad input raises :class:`LoreError` with a message fit to show a user.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Tuple

from companion.errors import InvalidInput
from companion.formats import jsontext

FORMAT_CHARACTER_BOOK = "character_book"
FORMAT_SILLYTAVERN = "sillytavern"
FORMAT_LOREBOOK_V3 = "lorebook_v3"
FORMATS = (FORMAT_CHARACTER_BOOK, FORMAT_SILLYTAVERN, FORMAT_LOREBOOK_V3)

BEFORE_CHAR = "before_char"
AFTER_CHAR = "after_char"
DEFAULT_INSERTION_ORDER = 100

#: SillyTavern ``selectiveLogic`` values (how secondary keys combine).
LOGIC_AND_ANY, LOGIC_NOT_ALL, LOGIC_NOT_ANY, LOGIC_AND_ALL = 0, 1, 2, 3

_CB = "cb"  # family of character_book and lorebook_v3 (same field names)
_ST = "st"  # SillyTavern world info
_UTF8_BOM = b"\xef\xbb\xbf"


class LoreError(InvalidInput):
    """A lorebook that cannot be read; the message is fit to show a user."""


@dataclass
class _Origin:
    """How an object looked in its source, so an export to the same format gives it back."""

    family: str
    raw: Dict[str, Any]  # known fields as they came (source names)
    order: Tuple[str, ...]  # every source key, in source order
    key: Optional[str] = None  # SillyTavern: the entry's key in the "entries" object
    wrapper: Dict[str, Any] = field(default_factory=dict)  # lorebook_v3: keys beside spec/data


@dataclass
class LoreEntry:
    """One lorebook entry, with V2 character_book field names."""

    keys: List[str] = field(default_factory=list)
    secondary_keys: List[str] = field(default_factory=list)
    content: str = ""
    comment: str = ""
    constant: bool = False
    selective: bool = False
    insertion_order: int = DEFAULT_INSERTION_ORDER
    enabled: bool = True
    position: str = BEFORE_CHAR
    case_sensitive: bool = False
    extensions: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    id: Optional[int] = None
    #: Internal: the source spelling of the known fields (None for entries made in code).
    origin: Optional[_Origin] = field(default=None, compare=False, repr=False)


@dataclass
class Lorebook:
    """A lorebook: book-level settings and its entries, in source order."""

    name: str = ""
    description: str = ""
    scan_depth: Optional[int] = None
    token_budget: Optional[int] = None
    recursive_scanning: bool = False
    extensions: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    entries: List[LoreEntry] = field(default_factory=list)
    source_format: str = FORMAT_CHARACTER_BOOK
    #: Internal: the source spelling of the known fields (None for books made in code).
    origin: Optional[_Origin] = field(default=None, compare=False, repr=False)


@dataclass
class ActivatedEntry:
    """An entry chosen for the prompt, and why."""

    entry: LoreEntry
    book_name: str
    reason: str  # "constant" or "key: <the matched key>"
    tokens: int = 0  # count_tokens(entry.content)
    book_index: int = 0  # index of the book in the list given to activate()
    entry_index: int = 0  # index of the entry in its book

    @property
    def content(self) -> str:
        """The entry's text."""
        return self.entry.content

    @property
    def position(self) -> str:
        """"before_char" or "after_char"."""
        return self.entry.position


# --------------------------------------------------------------------------- value parsers

def _json_type(value: Any) -> str:
    """A JSON-ish name for a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _p_keys(value: Any, where: str) -> List[str]:
    """A list of strings, or a comma-separated string; null means none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise LoreError(f"{where} must be a list of strings, but it holds {_json_type(item)}.")
        return list(value)
    raise LoreError(f"{where} must be a list of strings or a comma-separated string, "
                    f"not {_json_type(value)}.")


def _p_str(value: Any, where: str) -> str:
    """A string; null means empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LoreError(f"{where} must be a string, not {_json_type(value)}.")
    return value


def _p_bool(value: Any, where: str, default: bool = False) -> bool:
    """true/false (0/1 tolerated); null means the default."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise LoreError(f"{where} must be true or false, not {_json_type(value)}.")


def _int_or_none(value: Any) -> Optional[int]:
    """An integer from an int, an integral float or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _p_int(value: Any, where: str, default: Optional[int]) -> Optional[int]:
    """An integer; null means the default."""
    if value is None:
        return default
    number = _int_or_none(value)
    if number is None:
        raise LoreError(f"{where} must be a whole number, not {_json_type(value)}.")
    return number


def _p_count(value: Any, where: str) -> Optional[int]:
    """A whole number ≥ 0, or null."""
    number = _p_int(value, where, None)
    if number is not None and number < 0:
        raise LoreError(f"{where} must not be negative.")
    return number


def _p_dict(value: Any, where: str) -> Dict[str, Any]:
    """An object; null means empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LoreError(f"{where} must be an object, not {_json_type(value)}.")
    return copy.deepcopy(value)


def _p_id(value: Any, where: str) -> Optional[int]:
    """An id: a whole number when it is one, None otherwise (never an error)."""
    return _int_or_none(value)


def _p_position(value: Any, where: str) -> str:
    """"after_char" for "after_char" or the number 1; "before_char" for anything else."""
    if isinstance(value, bool):
        pass
    elif value == AFTER_CHAR or (not isinstance(value, str) and _int_or_none(value) == 1):
        return AFTER_CHAR
    elif value is None or isinstance(value, (str, int, float)):
        return BEFORE_CHAR
    raise LoreError(f"{where} must be \"before_char\", \"after_char\" or a number, "
                    f"not {_json_type(value)}.")


# --------------------------------------------------------------------------- field tables

@dataclass(frozen=True)
class _Field:
    """A known field: its source name, attribute, parser, writer and omit-when-absent default."""

    name: str
    attr: str
    parse: Callable[[Any, str], Any]
    dump: Callable[[Any], Any]
    default: Any


def _copy(value: Any) -> Any:
    """A deep copy, so exports never share mutable state with the book."""
    return copy.deepcopy(value)


_CB_ENTRY_FIELDS = (
    _Field("id", "id", _p_id, _copy, None),
    _Field("keys", "keys", _p_keys, _copy, []),
    _Field("secondary_keys", "secondary_keys", _p_keys, _copy, []),
    _Field("comment", "comment", _p_str, _copy, ""),
    _Field("content", "content", _p_str, _copy, ""),
    _Field("constant", "constant", _p_bool, _copy, False),
    _Field("selective", "selective", _p_bool, _copy, False),
    _Field("insertion_order", "insertion_order",
           lambda v, w: _p_int(v, w, DEFAULT_INSERTION_ORDER), _copy, DEFAULT_INSERTION_ORDER),
    _Field("enabled", "enabled", lambda v, w: _p_bool(v, w, True), _copy, True),
    _Field("position", "position", _p_position, _copy, BEFORE_CHAR),
    _Field("case_sensitive", "case_sensitive", _p_bool, _copy, False),
    _Field("extensions", "extensions", _p_dict, _copy, {}),
)

_ST_ENTRY_FIELDS = (
    _Field("uid", "id", _p_id, _copy, None),
    _Field("key", "keys", _p_keys, _copy, []),
    _Field("keysecondary", "secondary_keys", _p_keys, _copy, []),
    _Field("comment", "comment", _p_str, _copy, ""),
    _Field("content", "content", _p_str, _copy, ""),
    _Field("constant", "constant", _p_bool, _copy, False),
    _Field("selective", "selective", _p_bool, _copy, False),
    _Field("order", "insertion_order",
           lambda v, w: _p_int(v, w, DEFAULT_INSERTION_ORDER), _copy, DEFAULT_INSERTION_ORDER),
    _Field("position", "position", _p_position, lambda v: 1 if v == AFTER_CHAR else 0, BEFORE_CHAR),
    _Field("disable", "enabled", lambda v, w: not _p_bool(v, w, False), lambda v: not v, True),
    _Field("caseSensitive", "case_sensitive", _p_bool, lambda v: True if v else None, False),
    _Field("extensions", "extensions", _p_dict, _copy, {}),
)

_BOOK_FIELDS = (
    _Field("name", "name", _p_str, _copy, ""),
    _Field("description", "description", _p_str, _copy, ""),
    _Field("scan_depth", "scan_depth", _p_count, _copy, None),
    _Field("token_budget", "token_budget", _p_count, _copy, None),
    _Field("recursive_scanning", "recursive_scanning", _p_bool, _copy, False),
    _Field("extensions", "extensions", _p_dict, _copy, {}),
)

_CB_ENTRY_NAMES = frozenset(f.name for f in _CB_ENTRY_FIELDS)
_ST_ENTRY_NAMES = frozenset(f.name for f in _ST_ENTRY_FIELDS)
_BOOK_NAMES = frozenset(f.name for f in _BOOK_FIELDS) | {"entries"}


def _read_fields(obj: dict, fields: Tuple[_Field, ...], where: str) -> Tuple[dict, dict]:
    """Parse the known fields of ``obj``: (attribute values, raw source values)."""
    values: Dict[str, Any] = {}
    raw: Dict[str, Any] = {}
    for f in fields:
        if f.name in obj:
            raw[f.name] = copy.deepcopy(obj[f.name])
            values[f.attr] = f.parse(obj[f.name], f"{where}: \"{f.name}\"")
    return values, raw


def _write_fields(item: Any, fields: Tuple[_Field, ...], family: str) -> Dict[str, Any]:
    """Known fields of ``item`` under ``family``'s names.

    When ``item`` came from that family, unchanged fields come back exactly as they were and
    fields absent from the source stay absent while they hold their default; otherwise
    every field is written (``None`` ids and book counts left out).
    """
    origin = item.origin if item.origin is not None and item.origin.family == family else None
    out: Dict[str, Any] = {}
    for f in fields:
        value = getattr(item, f.attr)
        if origin is not None and f.name in origin.raw:
            raw = origin.raw[f.name]
            out[f.name] = copy.deepcopy(raw) if f.parse(raw, "") == value else f.dump(value)
        elif origin is not None:
            if value != f.default:
                out[f.name] = f.dump(value)
        elif value is not None:
            out[f.name] = f.dump(value)
    return out


def _assemble(known: Dict[str, Any], extra: Dict[str, Any], reserved: frozenset,
              origin: Optional[_Origin]) -> Dict[str, Any]:
    """Known fields plus ``extra`` (never overriding a known name), in source key order."""
    merged = dict(known)
    for key, value in extra.items():
        if key not in known and key not in reserved:
            merged[key] = copy.deepcopy(value)
    out: Dict[str, Any] = {}
    if origin is not None:
        for key in origin.order:
            if key in merged:
                out[key] = merged.pop(key)
    out.update(merged)
    return out


# --------------------------------------------------------------------------- parsing

def parse_lorebook_bytes(data: bytes) -> Lorebook:
    """Parse a lorebook file's bytes (UTF-8 JSON, BOM tolerated)."""
    if isinstance(data, str):
        text = data
    else:
        raw = bytes(data)
        if raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoreError(f"This lorebook file is not UTF-8 text (bad byte at position {exc.start}).") from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise LoreError("This lorebook file is empty.")
    try:
        obj = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        raise LoreError(f"This lorebook file is not valid JSON: {exc.msg} "
                        f"(line {exc.lineno}, column {exc.colno}).") from None
    return parse_lorebook(obj)


def _looks_like_card(obj: dict) -> bool:
    """A character card (V1 flat, or V2/V3 with spec/data)?"""
    spec = obj.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card"):
        return True
    data = obj.get("data")
    return "first_mes" in obj or (isinstance(data, dict) and "first_mes" in data)


def parse_lorebook(obj: dict) -> Lorebook:
    """Detect the format of a decoded lorebook and normalize it into a :class:`Lorebook`."""
    if not isinstance(obj, dict):
        raise LoreError(f"A lorebook must be a JSON object, not {_json_type(obj)}.")
    if "entries" not in obj and _looks_like_card(obj):
        data = obj.get("data")
        if not isinstance(data, dict):
            data = {}
        name = obj.get("name") or data.get("name")
        called = f" (\"{name}\")" if isinstance(name, str) and name else ""
        raise LoreError(f"This is a character card{called}, not a lorebook: import it as a "
                        "character instead (its own lorebook, if any, comes with it).")
    spec = obj.get("spec")
    if spec == FORMAT_LOREBOOK_V3:
        data = obj.get("data")
        if not isinstance(data, dict):
            raise LoreError("A lorebook_v3 file must have a \"data\" object holding the lorebook.")
        if not isinstance(data.get("entries"), list):
            raise LoreError("A lorebook_v3 file's \"data\" must have an \"entries\" list, not "
                            f"{_json_type(data.get('entries')) if 'entries' in data else 'nothing'}.")
        book = _parse_book(data, FORMAT_LOREBOOK_V3)
        assert book.origin is not None
        book.origin.wrapper = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("spec", "data")}
        return book
    if spec is not None and "entries" not in obj:
        raise LoreError(f"Unsupported lorebook spec {spec!r}: expected \"lorebook_v3\", "
                        "a character_book or a SillyTavern world info file.")
    if "entries" not in obj:
        raise LoreError("This is not a lorebook: it has no \"entries\".")
    entries = obj["entries"]
    if isinstance(entries, list):
        return _parse_book(obj, FORMAT_CHARACTER_BOOK)
    if isinstance(entries, dict):
        return _parse_book(obj, FORMAT_SILLYTAVERN)
    raise LoreError("A lorebook's \"entries\" must be a list (character book) or an object "
                    f"(SillyTavern world info), not {_json_type(entries)}.")


def _parse_book(obj: dict, fmt: str) -> Lorebook:
    """Build a Lorebook from a character_book-shaped or SillyTavern-shaped object."""
    family = _ST if fmt == FORMAT_SILLYTAVERN else _CB
    values, raw = _read_fields(obj, _BOOK_FIELDS, "The lorebook")
    extra = {k: copy.deepcopy(v) for k, v in obj.items() if k not in _BOOK_NAMES}
    book = Lorebook(**values, extra=extra, source_format=fmt,
                    origin=_Origin(family, raw, tuple(obj)))
    if family == _ST:
        for key, item in obj["entries"].items():
            book.entries.append(_parse_entry(item, _ST, f"Entry \"{key}\"", key))
    else:
        for index, item in enumerate(obj["entries"]):
            book.entries.append(_parse_entry(item, _CB, f"Entry {index + 1}", None))
    return book


def _parse_entry(item: Any, family: str, where: str, st_key: Optional[str]) -> LoreEntry:
    """Build a LoreEntry from one source entry."""
    if not isinstance(item, dict):
        raise LoreError(f"{where} must be an object, not {_json_type(item)}.")
    fields = _ST_ENTRY_FIELDS if family == _ST else _CB_ENTRY_FIELDS
    names = _ST_ENTRY_NAMES if family == _ST else _CB_ENTRY_NAMES
    values, raw = _read_fields(item, fields, where)
    extra = {k: copy.deepcopy(v) for k, v in item.items() if k not in names}
    if family == _ST:
        raw_position = item.get("position")
        number = None if isinstance(raw_position, (bool, str)) else _int_or_none(raw_position)
        if number is not None and number not in (0, 1):
            extra["position"] = copy.deepcopy(item["position"])
    return LoreEntry(**values, extra=extra, origin=_Origin(family, raw, tuple(item), key=st_key))


# --------------------------------------------------------------------------- export

def _st_position_number(entry: LoreEntry) -> Optional[int]:
    """The SillyTavern position number (anything but 1) kept with a "before_char" entry.

    Looked up in ``extra["position"]`` (SillyTavern source) then ``extensions["position"]``
    (where SillyTavern puts it in a character_book); None when neither holds one.
    """
    if entry.position != BEFORE_CHAR:
        return None
    for candidate in (entry.extra.get("position"), entry.extensions.get("position")):
        number = None if isinstance(candidate, (bool, str)) else _int_or_none(candidate)
        if number is not None and number != 1:
            return number
    return None


def _book_known(book: Lorebook, family: str) -> Dict[str, Any]:
    """Book-level known fields under ``family``'s names.

    SillyTavern files have no book-level settings, so a book from another format only
    writes the ones that differ from their defaults there (nothing is lost that way).
    """
    known = _write_fields(book, _BOOK_FIELDS, family)
    if family == _ST and (book.origin is None or book.origin.family != _ST):
        for f in _BOOK_FIELDS:
            if f.name in known and getattr(book, f.attr) == f.default:
                del known[f.name]
    return known


def to_character_book(book: Lorebook) -> dict:
    """The V2/V3 ``character_book`` object for ``book``, with every ``extra`` key merged back."""
    entries = []
    for entry in book.entries:
        known = _write_fields(entry, _CB_ENTRY_FIELDS, _CB)
        if entry.origin is None or entry.origin.family != _CB:
            number = _st_position_number(entry)
            if number is not None and number != 0:
                known["extensions"] = dict(known.get("extensions") or {})
                known["extensions"].setdefault("position", number)
        entries.append(_assemble(known, entry.extra, _CB_ENTRY_NAMES,
                                 entry.origin if entry.origin and entry.origin.family == _CB else None))
    known = _book_known(book, _CB)
    known["entries"] = entries
    origin = book.origin if book.origin and book.origin.family == _CB else None
    return _assemble(known, book.extra, _BOOK_NAMES, origin)


def to_lorebook_v3(book: Lorebook) -> dict:
    """A standalone V3 lorebook file: ``{"spec": "lorebook_v3", "data": <character_book>}``."""
    data = to_character_book(book)
    if book.source_format != FORMAT_LOREBOOK_V3:
        for item in data["entries"]:
            item.setdefault("use_regex", False)
            item.setdefault("extensions", {})
        data.setdefault("extensions", {})
    wrapper = book.origin.wrapper if book.origin is not None else {}
    out = {"spec": FORMAT_LOREBOOK_V3, "data": data}
    out.update({k: copy.deepcopy(v) for k, v in wrapper.items() if k not in out})
    return out


#: Field order of entries written fresh (not from a SillyTavern source).
_ST_FRESH_ORDER = ("uid", "key", "keysecondary", "comment", "content", "constant", "selective",
                   "order", "position", "disable", "caseSensitive", "extensions")


def to_sillytavern(book: Lorebook) -> dict:
    """A SillyTavern world info object (``{"entries": {"<uid>": {...}}}``), ``extra`` merged back."""
    used_keys: set = set()
    used_uids = {e.id for e in book.entries if e.id is not None}
    next_uid = 0
    entries: Dict[str, Any] = {}
    for entry in book.entries:
        entry_origin = entry.origin if entry.origin is not None and entry.origin.family == _ST else None
        same = entry_origin is not None
        known = _write_fields(entry, _ST_ENTRY_FIELDS, _ST)
        if entry.position == BEFORE_CHAR:
            raw = entry_origin.raw.get("position") if entry_origin is not None else None
            if raw is None or _p_position(raw, "") != BEFORE_CHAR:
                number = _st_position_number(entry)
                if number is not None:
                    known["position"] = number
                elif not same:
                    known["position"] = 0
        if not same and "extensions" in known and not known["extensions"]:
            del known["extensions"]
        if not same and known.get("caseSensitive") is None:
            known.pop("caseSensitive", None)
        uid = entry.id
        if uid is None:  # SillyTavern needs one: the first free number
            while next_uid in used_uids:
                next_uid += 1
            uid = next_uid
            used_uids.add(uid)
            if "uid" not in known and not (entry_origin is not None and entry_origin.key is not None):
                known["uid"] = uid
        key = entry_origin.key if entry_origin is not None else None
        unchanged_uid = entry_origin is not None and _p_id(entry_origin.raw.get("uid"), "") == entry.id
        if key is None or key in used_keys or not unchanged_uid:
            key = str(uid)
        while key in used_keys:  # duplicate ids: keep every entry under a fresh key
            while next_uid in used_uids:
                next_uid += 1
            key = str(next_uid)
            used_uids.add(next_uid)
        used_keys.add(key)
        if not same:
            known = {name: known[name] for name in _ST_FRESH_ORDER if name in known}
        entries[key] = _assemble(known, entry.extra, _ST_ENTRY_NAMES, entry_origin)
    known = _book_known(book, _ST)
    known["entries"] = entries
    origin = book.origin if book.origin and book.origin.family == _ST else None
    out = _assemble(known, book.extra, _BOOK_NAMES, origin)
    if origin is None:  # SillyTavern writes "entries" first
        out = {"entries": out.pop("entries"), **out}
    return out


def export_lorebook(book: Lorebook, fmt: Optional[str] = None) -> dict:
    """Export ``book`` to ``fmt`` (one of FORMATS), by default the format it was read from."""
    fmt = fmt or book.source_format
    if fmt == FORMAT_SILLYTAVERN:
        return to_sillytavern(book)
    if fmt == FORMAT_LOREBOOK_V3:
        return to_lorebook_v3(book)
    if fmt == FORMAT_CHARACTER_BOOK:
        return to_character_book(book)
    raise LoreError(f"Unknown lorebook format {fmt!r}: use one of {', '.join(FORMATS)}.")


# --------------------------------------------------------------------------- activation

@lru_cache(maxsize=4096)
def _key_pattern(key: str, case_sensitive: bool) -> "re.Pattern[str]":
    """Whole-word at the ends that are word characters, plain substring elsewhere."""
    body = re.escape(key)
    if re.match(r"\w", key[0]):
        body = r"(?<!\w)" + body
    if re.match(r"\w", key[-1]):
        body = body + r"(?!\w)"
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _first_match(keys: List[str], text: str, case_sensitive: bool) -> Optional[str]:
    """The first key (stripped) found in ``text``, or None."""
    for key in keys:
        key = key.strip()
        if key and _key_pattern(key, case_sensitive).search(text):
            return key
    return None


def _selective_logic(entry: LoreEntry) -> int:
    """SillyTavern's selectiveLogic for the entry (ST field or card extension), default AND ANY."""
    for value in (entry.extra.get("selectiveLogic"), entry.extensions.get("selectiveLogic")):
        number = None if isinstance(value, (bool, str)) else _int_or_none(value)
        if number in (LOGIC_AND_ANY, LOGIC_NOT_ALL, LOGIC_NOT_ANY, LOGIC_AND_ALL):
            return number
    return LOGIC_AND_ANY


def _secondary_ok(entry: LoreEntry, text: str) -> bool:
    """Whether a selective entry's secondary keys allow it (true when it has none)."""
    keys = [k.strip() for k in entry.secondary_keys if k.strip()]
    if not entry.selective or not keys:
        return True
    hits = [bool(_key_pattern(k, entry.case_sensitive).search(text)) for k in keys]
    logic = _selective_logic(entry)
    if logic == LOGIC_NOT_ALL:
        return not all(hits)
    if logic == LOGIC_NOT_ANY:
        return not any(hits)
    if logic == LOGIC_AND_ALL:
        return all(hits)
    return any(hits)


def _reason(entry: LoreEntry, text: str) -> Optional[str]:
    """Why the entry activates on ``text``, or None when it does not."""
    if not entry.enabled:
        return None
    if entry.constant:
        return "constant"
    key = _first_match(entry.keys, text, entry.case_sensitive)
    if key is None or not _secondary_ok(entry, text):
        return None
    return f"key: {key}"


def activate(books: List[Lorebook], recent_texts: List[str], count_tokens: Callable[[str], int],
             scan_depth: int = 2, token_budget: Optional[int] = 512) -> List[ActivatedEntry]:
    """The entries to put in the prompt, in insertion order, within the token budgets.

    ``recent_texts`` are the newest messages, newest last; the last ``scan_depth`` of them
    are scanned (a book's own scan_depth overrides it). Candidates are ordered by
    insertion_order (ties: book order, then entry order) and kept while the total stays
    within ``token_budget`` (None: no limit) and each book's own token_budget; an entry
    that does not fit is skipped and smaller later ones are still tried. Entries with
    blank content are never returned.
    """
    texts = [t for t in recent_texts if isinstance(t, str)]
    candidates: List[Tuple[int, int, int, ActivatedEntry]] = []
    for b_index, book in enumerate(books):
        depth = book.scan_depth if book.scan_depth is not None else scan_depth
        depth = max(int(depth), 0)
        window = "\n".join(texts[-depth:]) if depth else ""
        for e_index, entry in enumerate(book.entries):
            if not entry.content.strip():
                continue
            reason = _reason(entry, window)
            if reason is not None:
                candidates.append((entry.insertion_order, b_index, e_index,
                                   ActivatedEntry(entry, book.name, reason, 0, b_index, e_index)))
    candidates.sort(key=lambda c: c[:3])
    chosen: List[ActivatedEntry] = []
    total = 0
    per_book: Dict[int, int] = {}
    for _, b_index, _, item in candidates:
        tokens = int(count_tokens(item.entry.content))
        if token_budget is not None and total + tokens > token_budget:
            continue
        own = books[b_index].token_budget
        if own is not None and per_book.get(b_index, 0) + tokens > own:
            continue
        item.tokens = tokens
        total += tokens
        per_book[b_index] = per_book.get(b_index, 0) + tokens
        chosen.append(item)
    return chosen



