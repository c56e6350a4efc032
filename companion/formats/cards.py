"""Character cards in, as SillyTavern users share them.

Reads PNG cards (``chara`` / ``ccv3`` text chunks holding base64 JSON),
best-effort WebP/JPEG cards whose metadata Pillow exposes, and plain JSON
cards, and turns V1, V2 and V3 cards into one flat, fully populated dict.

Every bad input raises :class:`CardError` with a message fit to show a user.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
import re
import warnings
from typing import Any, Dict, List, Mapping, Optional

from PIL import Image, UnidentifiedImageError

from companion.errors import InvalidInput
from companion.formats import jsontext

SPEC_V1 = "chara_card_v1"
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"

#: Refuse images with more pixels than this (50 megapixels).
MAX_IMAGE_PIXELS = 50_000_000

#: Text fields, always present in the result, "" when missing.
STRING_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
    "nickname",
)
#: Fields that must be lists of strings.
STRING_LIST_FIELDS = ("alternate_greetings", "tags", "group_only_greetings")
#: Every field the result carries (besides "spec" and "unknown").
CARD_FIELDS = STRING_FIELDS + STRING_LIST_FIELDS + (
    "character_book",
    "extensions",
    "assets",
    "creation_date",
    "modification_date",
    "source",
)
#: V1 fields that V2 exporters also copy to the top level of the card.
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_UTF8_BOM = b"\xef\xbb\xbf"
_B64_STRIP = re.compile(r"\s+")
_B64_VALID = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")
_EXIF_IFD = 0x8769
_EXIF_USER_COMMENT = 0x9286
_EXIF_IMAGE_DESCRIPTION = 0x010E


class CardError(InvalidInput):
    """A character card could not be read; the message is user-facing."""


# --------------------------------------------------------------------------
# entry points


def read_card(data: bytes) -> dict:
    """Read a card from raw bytes (PNG/WebP/JPEG image or JSON) and normalize it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CardError("card data must be bytes")
    data = bytes(data)
    if not data.strip():
        raise CardError("the file is empty")
    body = data[len(_UTF8_BOM):] if data.startswith(_UTF8_BOM) else data
    if body.lstrip()[:1] in (b"{", b"["):
        return normalize_card(_parse_json_bytes(body, "the file"))
    return card_from_png_text(_image_text(data))


def card_from_png_text(text: Dict[str, str]) -> dict:
    """Pick ``ccv3`` over ``chara`` from image text chunks, decode and normalize.

    Keys are matched case-insensitively. If ``ccv3`` is present but broken and a
    ``chara`` chunk also exists, the ``chara`` card is used instead; if both are
    broken, the ``ccv3`` error is raised.
    """
    if not isinstance(text, dict):
        raise CardError("image metadata is not readable")
    chunks = _lower_keys(text)
    candidates = [chunks[key] for key in ("ccv3", "chara") if key in chunks]
    if not candidates:
        raise CardError("the image has no character card data (no 'chara' or 'ccv3' chunk)")
    first_error: Optional[CardError] = None
    for value in candidates:
        try:
            return normalize_card(_decode_chunk(value))
        except CardError as exc:
            if first_error is None:
                first_error = exc
    assert first_error is not None
    raise first_error


def normalize_card(obj: dict) -> dict:
    """Turn a V1, V2 or V3 card object into one flat dict with every field present."""
    if not isinstance(obj, dict):
        raise CardError("the card must be a JSON object")
    spec = _spec_of(obj)
    if spec == SPEC_V1:
        source: Dict[str, Any] = obj
        fallback: Dict[str, Any] = {}
    else:
        data = obj.get("data")
        if not isinstance(data, dict):
            raise CardError("the card's 'data' section is missing or is not an object")
        source = data
        # V2 exporters copy the V1 fields to the top level; use them only for gaps.
        fallback = {k: obj[k] for k in V1_FIELDS if k in obj and k not in source}

    if spec == SPEC_V1 and "name" not in obj and "entries" in obj:
        raise CardError("this looks like a lorebook (World Info) file, not a character card")

    merged = dict(fallback)
    merged.update(source)

    card: Dict[str, Any] = {"spec": spec}
    for field in STRING_FIELDS:
        card[field] = _as_str(merged.get(field), field)
    if not card["creator_notes"] and spec == SPEC_V1:
        card["creator_notes"] = _as_str(merged.get("creatorcomment"), "creatorcomment")
    for field in STRING_LIST_FIELDS:
        card[field] = _as_str_list(merged.get(field), field)

    card["character_book"] = _as_optional_dict(merged.get("character_book"), "character_book")
    extensions = _as_optional_dict(merged.get("extensions"), "extensions")
    card["extensions"] = extensions if extensions is not None else {}
    card["assets"] = _as_optional_list(merged.get("assets"), "assets")
    card["source"] = _as_optional_list(merged.get("source"), "source")
    card["creation_date"] = _as_timestamp(merged.get("creation_date"))
    card["modification_date"] = _as_timestamp(merged.get("modification_date"))

    card["unknown"] = {k: copy.deepcopy(v) for k, v in source.items() if k not in CARD_FIELDS}

    card["name"] = card["name"].strip()
    if not card["name"]:
        raise CardError("card has no name")
    return card


# --------------------------------------------------------------------------
# images


def _image_text(data: bytes) -> Dict[str, str]:
    """Open an image with a pixel guard and collect its text metadata."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise CardError(_too_large_message()) from None
    except UnidentifiedImageError:
        raise CardError("the file is neither a character card image nor a JSON card") from None
    except Exception as exc:  # Pillow raises many kinds on garbage input
        raise CardError(_damaged_message(exc)) from None

    with img:
        width, height = img.size
        if width * height > MAX_IMAGE_PIXELS:
            raise CardError(_too_large_message(width, height))

        text: Dict[str, str] = {}
        _add_text(text, img.info)
        if "chara" not in _lower_keys(text) and "ccv3" not in _lower_keys(text):
            # PNG chunks after the pixel data are only read once the image loads.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _add_text(text, getattr(img, "text", None) or {})
            except Image.DecompressionBombError:
                raise CardError(_too_large_message(width, height)) from None
            except Exception as exc:
                raise CardError(_damaged_message(exc)) from None
        if "chara" not in _lower_keys(text) and "ccv3" not in _lower_keys(text):
            extra = _exif_card_text(img)
            if extra is not None:
                text["chara"] = extra
        if img.format == "PNG" or data.startswith(_PNG_MAGIC):
            kind = "PNG"
        else:
            kind = img.format or "image"
    if "chara" not in _lower_keys(text) and "ccv3" not in _lower_keys(text):
        raise CardError(f"this {kind} has no character card data in it")
    return text


def _too_large_message(width: int = 0, height: int = 0) -> str:
    limit = MAX_IMAGE_PIXELS // 1_000_000
    if width and height:
        return f"the image is too large ({width}x{height} pixels; the limit is {limit} megapixels)"
    return f"the image is too large (the limit is {limit} megapixels)"


def _damaged_message(exc: BaseException) -> str:
    """User-facing message for a Pillow failure while reading an image."""
    detail = str(exc).lower()
    if isinstance(exc, (ValueError, MemoryError)) and ("too large" in detail or "memory" in detail):
        return "the card data in this image is too large to read"
    return "the image file is damaged and could not be read"


def _add_text(out: Dict[str, str], info: Any) -> None:
    """Copy str/bytes metadata values from a Pillow info/text mapping into ``out``."""
    if not isinstance(info, dict):
        return
    for key, value in info.items():
        if not isinstance(key, str) or key in out:
            continue
        if isinstance(value, str):
            out[key] = str(value)
        elif isinstance(value, (bytes, bytearray)) and key.lower() in ("chara", "ccv3"):
            out[key] = bytes(value).decode("latin-1")


def _exif_card_text(img: Image.Image) -> Optional[str]:
    """Best effort: a card stored in EXIF UserComment/ImageDescription or a comment."""
    candidates: List[Any] = []
    try:
        exif = img.getexif()
        candidates.append(exif.get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT))
        candidates.append(exif.get(_EXIF_USER_COMMENT))
        candidates.append(exif.get(_EXIF_IMAGE_DESCRIPTION))
    except Exception:
        pass
    candidates.append(img.info.get("comment"))
    for value in candidates:
        text = _exif_value_text(value)
        if text is None:
            continue
        stripped = text.strip()
        if stripped.startswith("{") or (len(stripped) > 16 and _B64_VALID.fullmatch(stripped)):
            return stripped
    return None


def _exif_value_text(value: Any) -> Optional[str]:
    """Decode an EXIF UserComment (with its 8-byte charset header) or plain value."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (bytes, bytearray)):
        return None
    raw = bytes(value)
    header, rest = raw[:8], raw[8:]
    try:
        if header.startswith(b"UNICODE"):
            if rest.startswith((b"\xff\xfe", b"\xfe\xff")):
                return rest.decode("utf-16")
            return rest.decode("utf-16-be" if rest[:1] == b"\x00" else "utf-16-le")
        if header.startswith((b"ASCII", b"\x00\x00\x00\x00\x00\x00\x00\x00")):
            return rest.decode("utf-8")
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --------------------------------------------------------------------------
# decoding


def _lower_keys(text: Dict[Any, Any]) -> Dict[str, Any]:
    """Lower-case the keys; an exactly lower-case key wins over other spellings."""
    out: Dict[str, Any] = {}
    for key, value in text.items():
        if not isinstance(key, str):
            continue
        low = key.lower()
        if low not in out or key == low:
            out[low] = value
    return out


def _decode_chunk(value: Any) -> dict:
    """Decode one ``chara``/``ccv3`` value: base64 of UTF-8 JSON (raw JSON tolerated)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        raise CardError("card data is not valid base64")
    text = value.strip()
    if text.startswith("{") or text.startswith("["):
        return _parse_json_text(text, "card data")
    compact = _B64_STRIP.sub("", text)
    if not compact or not _B64_VALID.fullmatch(compact):
        raise CardError("card data is not valid base64")
    compact = compact.rstrip("=").replace("-", "+").replace("_", "/")
    if len(compact) % 4 == 1:
        raise CardError("card data is not valid base64")
    compact += "=" * (-len(compact) % 4)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CardError("card data is not valid base64") from None
    return _parse_json_bytes(raw, "card data")


def _parse_json_bytes(raw: bytes, what: str) -> dict:
    """Decode UTF-8 (BOM tolerated) and parse a JSON object."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError(f"{what} is not valid UTF-8 text") from None
    return _parse_json_text(text, what)


def _parse_json_text(text: str, what: str) -> dict:
    """Parse JSON text that must hold an object."""
    try:
        obj = jsontext.loads(text)
    except ValueError:
        raise CardError(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CardError(f"{what} must be a JSON object, not {_json_type(obj)}")
    return obj


def _json_type(obj: Any) -> str:
    if isinstance(obj, list):
        return "a list"
    if isinstance(obj, str):
        return "a string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, dict):
        return "an object"
    return "a number"


# --------------------------------------------------------------------------
# field coercion


def _spec_of(obj: Dict[str, Any]) -> str:
    """Return the card's spec: V2/V3 when declared so, else V1 flat."""
    spec = obj.get("spec")
    if isinstance(spec, str):
        spec = spec.strip().lower()
        if spec in (SPEC_V2, SPEC_V3):
            return spec
    return SPEC_V1


def _as_str(value: Any, field: str) -> str:
    """A text field: null becomes "", numbers and booleans become text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            return str(value)
        except ValueError:  # an integer too long to print
            raise CardError(f"card field '{field}' holds a number that is too long") from None
    raise CardError(f"card field '{field}' must be text, not {_json_type(value)}")


def _as_str_list(value: Any, field: str) -> List[str]:
    """A list of strings; null is []; a lone string is tolerated (tags: comma list)."""
    if value is None:
        return []
    if isinstance(value, str):
        if field == "tags":
            return [t.strip() for t in value.split(",") if t.strip()]
        return [value] if value.strip() else []
    if not isinstance(value, list):
        raise CardError(f"card field '{field}' must be a list of strings, not {_json_type(value)}")
    for item in value:
        if not isinstance(item, str):
            raise CardError(f"card field '{field}' must be a list of strings")
    return list(value)


def _as_optional_dict(value: Any, field: str) -> Optional[dict]:
    """An object field or None (deep-copied so the input is never aliased)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CardError(f"card field '{field}' must be an object, not {_json_type(value)}")
    return copy.deepcopy(value)


def _as_optional_list(value: Any, field: str) -> Optional[list]:
    """A list field or None; a lone string becomes a one-item list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise CardError(f"card field '{field}' must be a list, not {_json_type(value)}")
    return copy.deepcopy(value)


def _as_timestamp(value: Any) -> Optional[int]:
    """A Unix timestamp as int, or None when missing or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------
# cards out

V2_DATA_FIELDS = (
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings",
    "character_book", "tags", "creator", "character_version", "extensions",
)
V3_ONLY_FIELDS = ("nickname", "group_only_greetings", "assets", "creation_date",
                  "modification_date", "source")


def card_data(card: dict, v3: bool = True) -> dict:
    """The `data` section of a card for export: its fields plus the unknown keys it came with."""
    fields = V2_DATA_FIELDS + (V3_ONLY_FIELDS if v3 else ())
    data = {k: copy.deepcopy(card.get(k)) for k in fields}
    if data.get("character_book") is None:
        data.pop("character_book")
    if v3:   # absent optional V3 fields stay absent, so a card comes back as it went out
        for key in ("assets", "source", "creation_date", "modification_date"):
            if data.get(key) is None:
                data.pop(key)
    for key, value in (card.get("unknown") or {}).items():
        data.setdefault(key, copy.deepcopy(value))
    return data


def to_v3(card: dict) -> dict:
    """A Character Card V3 object (`chara_card_v3`)."""
    return {"spec": SPEC_V3, "spec_version": "3.0", "data": card_data(card, v3=True)}


def to_v2(card: dict) -> dict:
    """A Character Card V2 object (`chara_card_v2`), for readers that know only V2."""
    return {"spec": SPEC_V2, "spec_version": "2.0", "data": card_data(card, v3=False)}


def png_with_card(image_png: bytes, card: dict) -> bytes:
    """The PNG with the card in a V3 `ccv3` chunk and a V2 `chara` chunk (other text dropped)."""
    from PIL import PngImagePlugin

    def encoded(obj: dict) -> str:
        return base64.b64encode(json.dumps(obj, ensure_ascii=False).encode("utf-8")).decode("ascii")

    image = Image.open(io.BytesIO(image_png))
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", encoded(to_v2(card)))
    info.add_text("ccv3", encoded(to_v3(card)))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def card_voice(card: dict) -> dict:
    """A card's own voice setting ({"voice", "speed"}, either may be missing) from extensions.voice."""
    value = (card.get("extensions") or {}).get("voice")
    if isinstance(value, str):          # a bare voice name
        return {"voice": value}
    if not isinstance(value, dict):
        return {}
    return {k: value[k] for k in ("voice", "speed") if k in value}


def char_name(companion: Mapping[str, Any]) -> str:
    """What {{char}} stands for: the card's nickname when it has one, else the name."""
    return (companion.get("card") or {}).get("nickname") or companion["name"]
