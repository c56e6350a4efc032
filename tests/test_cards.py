"""Tests for companion.formats.cards: real SillyTavern cards plus cards built here."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from companion.formats.cards import CardError, card_from_png_text, normalize_card, read_card

CARDS = Path(__file__).resolve().parents[2] / "shared" / "cards"

ALL_FIELDS = {
    "spec", "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings",
    "character_book", "tags", "creator", "character_version", "extensions", "nickname",
    "group_only_greetings", "assets", "creation_date", "modification_date", "source", "unknown",
}


def real_card(name: str) -> bytes:
    path = CARDS / name
    assert path.is_file(), f"real test card missing: {path} (is ../shared beside the repo?)"
    return path.read_bytes()


def b64json(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode("utf-8")).decode("ascii")


def make_png(text: dict | None = None, ztxt: dict | None = None, itxt: dict | None = None,
             size: tuple = (4, 6)) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    for key, value in (ztxt or {}).items():
        info.add_text(key, value, zip=True)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims the given size (pixel data is not valid)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


V1_CARD = {
    "name": "Tess",
    "description": "A lighthouse keeper.",
    "personality": "calm",
    "scenario": "A stormy night.",
    "first_mes": "*waves* Hello there.",
    "mes_example": "<START>\n{{char}}: Hi.",
    "talkativeness": "0.5",
    "create_date": "1674407315376",
}

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Orin",
        "description": "A wandering bard.",
        "personality": "cheerful",
        "scenario": "A tavern.",
        "first_mes": "Greetings!",
        "mes_example": "",
        "creator_notes": "Have fun.",
        "system_prompt": "You are {{char}}.",
        "post_history_instructions": "Stay in character.",
        "alternate_greetings": ["Hey!", "Well met."],
        "character_book": {"name": "Songs", "entries": [
            {"keys": ["ballad"], "content": "Orin knows many ballads.", "enabled": True,
             "insertion_order": 100}]},
        "tags": ["bard", "fantasy"],
        "creator": "tester",
        "character_version": "2.1",
        "extensions": {"talkativeness": "0.7", "depth_prompt": {"prompt": "x", "depth": 4}},
    },
}


def v3_card() -> dict:
    return {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Nyx",
            "nickname": "Ny",
            "description": "A night spirit.",
            "first_mes": "The stars are out.",
            "tags": ["spirit"],
            "group_only_greetings": ["Hello, everyone."],
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
            "creation_date": 1700000000,
            "modification_date": 1700000500,
            "source": ["https://example.invalid/nyx"],
            "extensions": {
                "my_frontend": {"mood": ["dark", 3, None], "nested": {"a": {"b": [1.5, True]}}},
                "talkativeness": "0.5",
                "weird key!": None,
            },
            "future_field": {"keep": "me"},
        },
    }


# ---------------------------------------------------------------- real cards


def test_aqua_v1_png():
    card = read_card(real_card("Aqua.png"))
    assert set(card) == ALL_FIELDS
    assert card["spec"] == "chara_card_v1"
    assert card["name"] == "Aqua"
    assert card["description"].startswith("Aqua is character from Konosuba")
    assert "Goddess of Water" in card["first_mes"]
    assert card["personality"] == "" and card["scenario"] == "" and card["mes_example"] == ""
    assert card["alternate_greetings"] == [] and card["tags"] == []
    assert card["character_book"] is None
    assert card["extensions"] == {}
    # SillyTavern's V1 extras are kept, not lost
    assert card["unknown"]["talkativeness"] == "0.5"
    assert card["unknown"]["create_date"] == "1674407315376"
    assert card["unknown"]["fav"] == "false"


def test_default_seraphina_v2_png():
    card = read_card(real_card("default_Seraphina.png"))
    assert set(card) == ALL_FIELDS
    assert card["spec"] == "chara_card_v2"
    assert card["name"] == "Seraphina"
    assert card["description"].startswith("[Seraphina's Personality=")
    assert card["first_mes"].startswith("*You wake with a start")
    book = card["character_book"]
    assert isinstance(book, dict)
    assert book["name"] == "Eldoria"
    assert len(book["entries"]) == 4
    assert book["entries"][0]["keys"] == ["eldoria", "wood", "forest", "magical forest"]
    assert all(e["content"] for e in book["entries"])
    # fields present (empty in this card)
    assert card["system_prompt"] == ""
    assert card["post_history_instructions"] == ""
    assert card["alternate_greetings"] == []
    assert card["tags"] == []
    assert card["creator"] == "OtisAlejandro"
    assert card["character_version"] == "1.0.0"
    assert card["creator_notes"].startswith("ST Default Bot contest winner")
    assert isinstance(card["extensions"], dict)
    assert card["extensions"] == {"talkativeness": "0.5", "fav": False, "world": "Eldoria"}
    # V3-only fields default when absent
    assert card["nickname"] == "" and card["group_only_greetings"] == []
    assert card["assets"] is None and card["source"] is None
    assert card["creation_date"] is None and card["modification_date"] is None
    assert card["unknown"] == {}


def test_default_flux_the_cat_v2_png():
    card = read_card(real_card("default_FluxTheCat.png"))
    assert card["spec"] == "chara_card_v2"
    assert card["name"] == "Flux the Cat"
    assert card["creator"] == "@kallmeflocc on Discord"  # from data, not the empty top-level one
    assert card["character_version"] == "1.0.2"
    assert card["personality"].startswith("Cool, Impulsive")
    assert card["post_history_instructions"].startswith("[System note")
    assert card["scenario"].startswith("{{char}} is the new cat")
    assert card["character_book"] is None
    assert card["tags"] == []  # data.tags is [], the V1 copy at the top level is ""
    assert card["extensions"]["world"] == ""


def test_seraphina_v3_wins_over_chara():
    card = read_card(real_card("Seraphina_v3.png"))
    assert set(card) == ALL_FIELDS
    assert card["spec"] == "chara_card_v3"
    assert card["name"] == "Seraphina"
    assert card["nickname"] == "Sera"
    assert card["group_only_greetings"] == [
        "*Seraphina nods to everyone in the glade.* Welcome, travellers."]
    assert card["assets"] == [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
    assert card["creation_date"] == 1700000000
    assert card["modification_date"] == 1700000500
    assert card["source"] == ["made for tests from default_Seraphina.png"]
    assert len(card["character_book"]["entries"]) == 4
    assert card["extensions"] == {"talkativeness": "0.5", "fav": False, "world": "Eldoria"}


def test_lorebook_json_is_not_a_card():
    with pytest.raises(CardError, match="lorebook"):
        read_card(real_card("Eldoria.json"))


# ---------------------------------------------------------------- JSON cards


def test_json_v1_card_with_bom():
    data = b"\xef\xbb\xbf" + json.dumps(V1_CARD).encode("utf-8")
    card = read_card(data)
    assert card["spec"] == "chara_card_v1"
    assert card["name"] == "Tess"
    assert card["description"] == "A lighthouse keeper."
    assert card["mes_example"] == "<START>\n{{char}}: Hi."
    assert card["unknown"] == {"talkativeness": "0.5", "create_date": "1674407315376"}
    assert card["extensions"] == {} and card["character_book"] is None


def test_json_v2_card():
    card = read_card(json.dumps(V2_CARD, indent=2).encode("utf-8"))
    assert card["spec"] == "chara_card_v2"
    data = V2_CARD["data"]
    for field in ("name", "description", "personality", "scenario", "first_mes",
                  "creator_notes", "system_prompt", "post_history_instructions",
                  "alternate_greetings", "tags", "creator", "character_version",
                  "character_book", "extensions"):
        assert card[field] == data[field], field
    assert card["unknown"] == {}


def test_json_v3_unknown_extensions_round_trip():
    obj = v3_card()
    card = read_card(json.dumps(obj).encode("utf-8"))
    assert card["spec"] == "chara_card_v3"
    assert card["nickname"] == "Ny"
    assert card["extensions"] == obj["data"]["extensions"]
    assert json.dumps(card["extensions"], sort_keys=True) == json.dumps(
        obj["data"]["extensions"], sort_keys=True)
    assert card["unknown"] == {"future_field": {"keep": "me"}}
    assert card["creation_date"] == 1700000000
    assert card["source"] == ["https://example.invalid/nyx"]
    # defaults for fields the card left out
    assert card["personality"] == "" and card["alternate_greetings"] == []
    assert card["character_book"] is None


def test_normalize_does_not_alias_or_mutate_input():
    obj = v3_card()
    before = copy.deepcopy(obj)
    card = normalize_card(obj)
    card["extensions"]["my_frontend"]["mood"].append("changed")
    card["assets"].append({})
    assert obj == before


def test_v1_with_data_hybrid_without_spec_is_v1():
    obj = dict(V1_CARD, data={"name": "Other", "description": "dup"})
    card = normalize_card(obj)
    assert card["spec"] == "chara_card_v1"
    assert card["name"] == "Tess"
    assert card["unknown"]["data"] == {"name": "Other", "description": "dup"}


def test_type_coercion():
    obj = {"spec": "chara_card_v2", "data": {
        "name": "  Num  ", "description": None, "personality": 42, "scenario": 1.5,
        "character_version": 2, "creator": None, "tags": None, "alternate_greetings": None,
        "extensions": None, "character_book": None}}
    card = normalize_card(obj)
    assert card["name"] == "Num"
    assert card["description"] == ""
    assert card["personality"] == "42"
    assert card["scenario"] == "1.5"
    assert card["character_version"] == "2"
    assert card["creator"] == ""
    assert card["tags"] == [] and card["alternate_greetings"] == []
    assert card["extensions"] == {}


def test_numeric_name_becomes_text():
    assert normalize_card({"name": 7})["name"] == "7"


def test_v1_comma_tags_string():
    card = normalize_card({"name": "T", "tags": "a, b,,c "})
    assert card["tags"] == ["a", "b", "c"]


# ---------------------------------------------------------------- PNGs made here


def test_png_made_with_pillow_v1():
    card = read_card(make_png({"chara": b64json(V1_CARD)}))
    assert card["spec"] == "chara_card_v1"
    assert card["name"] == "Tess"
    assert card["first_mes"] == "*waves* Hello there."


def test_png_made_with_pillow_v2():
    card = read_card(make_png({"chara": b64json(V2_CARD)}))
    assert card["spec"] == "chara_card_v2"
    assert card["name"] == "Orin"
    assert card["alternate_greetings"] == ["Hey!", "Well met."]
    assert card["character_book"]["entries"][0]["keys"] == ["ballad"]


def test_png_key_case_and_ztxt_itxt():
    assert read_card(make_png({"Chara": b64json(V1_CARD)}))["name"] == "Tess"
    assert read_card(make_png(ztxt={"chara": b64json(V2_CARD)}))["name"] == "Orin"
    assert read_card(make_png(itxt={"CCV3": b64json(v3_card())}))["nickname"] == "Ny"


def test_png_ccv3_wins_over_chara():
    png = make_png({"chara": b64json(V2_CARD), "ccv3": b64json(v3_card())})
    card = read_card(png)
    assert card["spec"] == "chara_card_v3"
    assert card["name"] == "Nyx"


def test_jpeg_exif_user_comment_best_effort():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + b64json(V2_CARD).encode("ascii")
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "JPEG", exif=exif)
    assert read_card(buf.getvalue())["name"] == "Orin"


# ---------------------------------------------------------------- card_from_png_text


def test_card_from_png_text_missing_padding_and_whitespace():
    encoded = b64json(V1_CARD).rstrip("=")
    wrapped = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60))
    assert card_from_png_text({"chara": wrapped})["name"] == "Tess"


def test_card_from_png_text_prefers_ccv3_and_falls_back_when_broken():
    assert card_from_png_text({"chara": b64json(V1_CARD), "ccv3": b64json(v3_card())})[
        "spec"] == "chara_card_v3"
    assert card_from_png_text({"chara": b64json(V1_CARD), "ccv3": "!!!"})["name"] == "Tess"
    with pytest.raises(CardError, match="base64"):
        card_from_png_text({"ccv3": "!!!"})


def test_card_from_png_text_without_card_key():
    with pytest.raises(CardError):
        card_from_png_text({"Software": "GIMP"})


# ---------------------------------------------------------------- bad input


def test_random_bytes():
    with pytest.raises(CardError):
        read_card(os.urandom(1) + b"\x00garbage" + bytes(range(256)))


def test_empty_bytes():
    with pytest.raises(CardError, match="empty"):
        read_card(b"")
    with pytest.raises(CardError, match="empty"):
        read_card(b"  \n")


def test_png_without_card_chunk():
    with pytest.raises(CardError, match="no character card"):
        read_card(make_png({"Software": "test"}))


def test_png_with_bad_base64():
    with pytest.raises(CardError, match="card data is not valid base64"):
        read_card(make_png({"chara": "this is *not* base64!"}))


def test_png_chunk_with_json_list():
    with pytest.raises(CardError, match="object"):
        read_card(make_png({"chara": b64json([{"name": "x"}])}))


def test_png_chunk_with_invalid_json():
    bad = base64.b64encode(b"{not json").decode()
    with pytest.raises(CardError, match="not valid JSON"):
        read_card(make_png({"chara": bad}))


def test_card_without_name():
    with pytest.raises(CardError, match="card has no name"):
        read_card(json.dumps({"description": "no name"}).encode())
    with pytest.raises(CardError, match="card has no name"):
        read_card(make_png({"chara": b64json({"spec": "chara_card_v2",
                                              "data": {"name": "   "}})}))


def test_json_that_is_not_an_object_or_broken():
    with pytest.raises(CardError, match="object"):
        read_card(b"[1, 2, 3]")
    with pytest.raises(CardError, match="not valid JSON"):
        read_card(b"{\"name\": ")
    with pytest.raises(CardError):
        read_card(b"{\xff\xfe}")


def test_v2_without_data_object():
    with pytest.raises(CardError, match="data"):
        normalize_card({"spec": "chara_card_v2", "name": "X", "data": "nope"})


@pytest.mark.parametrize("field", ["tags", "alternate_greetings", "group_only_greetings"])
def test_list_of_non_strings_rejected(field):
    with pytest.raises(CardError, match=field):
        normalize_card({"spec": "chara_card_v3", "data": {"name": "X", field: ["ok", 3]}})


def test_wrong_shapes_rejected():
    with pytest.raises(CardError, match="extensions"):
        normalize_card({"name": "X", "extensions": ["a"]})
    with pytest.raises(CardError, match="character_book"):
        normalize_card({"name": "X", "character_book": "book"})
    with pytest.raises(CardError, match="description"):
        normalize_card({"name": "X", "description": {"a": 1}})
    with pytest.raises(CardError):
        normalize_card(["not", "a", "dict"])  # type: ignore[arg-type]


def test_image_over_50_megapixels():
    with pytest.raises(CardError, match="too large"):
        read_card(png_header_only(8000, 8000))  # 64 MP: the local guard


def test_decompression_bomb():
    with pytest.raises(CardError, match="too large"):
        read_card(png_header_only(30000, 30000))  # 900 MP: Pillow's own bomb error


def test_truncated_png():
    png = make_png({"Software": "x"})
    with pytest.raises(CardError):
        read_card(png[: len(png) // 2])


def test_oversized_compressed_text_chunk():
    with pytest.raises(CardError, match="too large"):
        read_card(make_png(ztxt={"chara": "A" * 3_000_000}))


def test_a_json_object_is_called_an_object():
    from companion.formats.cards import CardError, normalize_card

    with pytest.raises(CardError, match="must be text, not an object"):
        normalize_card({"spec": "chara_card_v3", "data": {"name": {"first": "Ada"}}})


def test_the_domain_errors_know_nothing_of_http():
    import subprocess
    import sys

    code = "import sys, companion.errors, companion.formats.cards, companion.characters.lore; print('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
