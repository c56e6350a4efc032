"""Lorebooks: parsing the three shared formats, exact round trips, activation, bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

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
    to_lorebook_v3,
    to_sillytavern,
)
from companion.formats.cards import read_card

CARDS = Path(__file__).resolve().parents[2] / "shared" / "cards"


def words(text: str) -> int:
    """Token counter for tests: one token per whitespace-separated word."""
    return len(text.split())


@pytest.fixture(scope="module")
def eldoria_bytes() -> bytes:
    return (CARDS / "Eldoria.json").read_bytes()


@pytest.fixture(scope="module")
def seraphina_book() -> dict:
    card = read_card((CARDS / "default_Seraphina.png").read_bytes())
    return card["character_book"]


def entry(keys, content="lore text", **kw) -> LoreEntry:
    return LoreEntry(keys=list(keys), content=content, **kw)


def book(*entries: LoreEntry, name: str = "book", **kw) -> Lorebook:
    return Lorebook(name=name, entries=list(entries), **kw)


def reasons(activated: list[ActivatedEntry]) -> list[str]:
    return [a.reason for a in activated]


# --------------------------------------------------------------------------- real files

def test_parse_eldoria_sillytavern(eldoria_bytes):
    lb = parse_lorebook_bytes(eldoria_bytes)
    assert lb.source_format == "sillytavern"
    assert len(lb.entries) == 4
    first = lb.entries[0]
    assert first.id == 0
    assert first.keys == ["eldoria", "wood", "forest", "magical forest"]
    assert first.content.startswith('{{user}}: "What is Eldoria?"')
    assert first.insertion_order == 100 and first.enabled and first.position == "before_char"
    assert not first.constant and not first.selective and not first.case_sensitive
    assert first.extra == {}
    assert lb.entries[1].keys == ["shadowfang", "beast", "monster", "monsters", "beasts"]
    assert [e.id for e in lb.entries] == [0, 1, 2, 3]


def test_eldoria_round_trip_is_exact(eldoria_bytes):
    original = json.loads(eldoria_bytes)
    lb = parse_lorebook(copy.deepcopy(original))
    out = to_sillytavern(lb)
    assert out == original
    # same key order too, so the re-exported file reads the same
    assert json.dumps(out, indent=4, ensure_ascii=False) == json.dumps(original, indent=4, ensure_ascii=False)
    assert export_lorebook(lb) == original


def test_parse_seraphina_character_book(seraphina_book):
    lb = parse_lorebook(copy.deepcopy(seraphina_book))
    assert lb.source_format == "character_book"
    assert lb.name == "Eldoria"
    assert len(lb.entries) == 4
    assert lb.entries[3].keys == ["power", "magic", "ability"]
    assert lb.entries[3].extensions == {"position": 0, "probability": None, "useProbability": False}
    assert lb.entries[0].position == "before_char"
    assert [e.id for e in lb.entries] == [0, 1, 2, 3]


def test_seraphina_round_trip_is_exact(seraphina_book):
    original = copy.deepcopy(seraphina_book)
    first = parse_lorebook(copy.deepcopy(original))
    exported = to_character_book(first)
    assert exported == original
    for got, want in zip(exported["entries"], original["entries"]):
        assert list(got) == list(want)  # same fields, same order
    assert parse_lorebook(exported) == first
    # the book has no "extensions"/"description" and its entries no "case_sensitive": still absent
    assert "extensions" not in exported and "case_sensitive" not in exported["entries"][0]


def test_eldoria_and_seraphina_book_hold_the_same_lore(eldoria_bytes, seraphina_book):
    st = parse_lorebook_bytes(eldoria_bytes)
    cb = parse_lorebook(seraphina_book)
    assert [e.keys for e in st.entries] == [e.keys for e in cb.entries]
    assert [e.content for e in st.entries] == [e.content for e in cb.entries]


def test_cross_format_round_trips(eldoria_bytes, seraphina_book):
    original = json.loads(eldoria_bytes)
    via_cb = to_sillytavern(parse_lorebook(to_character_book(parse_lorebook(original))))
    assert via_cb == original
    cb = parse_lorebook(seraphina_book)
    back = parse_lorebook(to_sillytavern(cb))
    assert back.source_format == "sillytavern"
    assert back.entries == cb.entries
    assert back.name == "Eldoria"


# --------------------------------------------------------------------------- formats

V3 = {
    "spec": "lorebook_v3",
    "data": {
        "name": "Harbor",
        "description": "Port town lore",
        "scan_depth": 3,
        "token_budget": 200,
        "recursive_scanning": False,
        "extensions": {"tool": {"v": 1}},
        "entries": [
            {
                "keys": ["harbor", "docks"],
                "content": "The harbor smells of tar.",
                "extensions": {"depth": 4},
                "enabled": True,
                "insertion_order": 10,
                "case_sensitive": None,
                "use_regex": False,
                "constant": False,
                "name": "Harbor",
                "priority": 5,
                "id": 7,
                "comment": "the docks",
                "selective": True,
                "secondary_keys": ["ship"],
                "position": "after_char",
            },
            {"keys": "lighthouse, beacon", "content": "A lighthouse.", "extensions": {},
             "enabled": False, "insertion_order": 20, "use_regex": False},
        ],
    },
    "exporter": "someapp",
}


def test_lorebook_v3_round_trip():
    lb = parse_lorebook(copy.deepcopy(V3))
    assert lb.source_format == "lorebook_v3"
    assert (lb.name, lb.scan_depth, lb.token_budget) == ("Harbor", 3, 200)
    first, second = lb.entries
    assert first.position == "after_char" and first.selective and first.secondary_keys == ["ship"]
    assert first.case_sensitive is False and first.id == 7
    assert first.extra == {"use_regex": False, "name": "Harbor", "priority": 5}
    assert second.keys == ["lighthouse", "beacon"] and not second.enabled
    assert to_lorebook_v3(lb) == V3
    assert export_lorebook(lb) == V3
    assert to_character_book(lb) == V3["data"]
    assert parse_lorebook(to_lorebook_v3(lb)) == lb


def test_sillytavern_modern_fields_kept_and_position_numbers():
    st = {
        "entries": {
            "5": {"uid": 5, "key": ["dragon"], "keysecondary": [], "comment": "", "content": "Dragons.",
                  "constant": False, "selective": True, "selectiveLogic": 0, "order": 50,
                  "position": 4, "depth": 2, "disable": False, "caseSensitive": None,
                  "matchWholeWords": None, "scanDepth": None, "probability": 100},
            "9": {"uid": 9, "key": "elf, elves", "content": "Elves.", "position": 1,
                  "caseSensitive": True, "order": 7},
        },
        "originalData": {"entries": []},
    }
    lb = parse_lorebook(copy.deepcopy(st))
    dragon, elf = lb.entries
    assert dragon.position == "before_char" and dragon.extra["position"] == 4
    assert dragon.extra["depth"] == 2 and dragon.extra["selectiveLogic"] == 0
    assert dragon.case_sensitive is False
    assert elf.position == "after_char" and "position" not in elf.extra
    assert elf.keys == ["elf", "elves"] and elf.case_sensitive
    assert lb.extra == {"originalData": {"entries": []}}
    assert to_sillytavern(lb) == st
    # an edited field is written in the new value, the rest untouched
    elf.keys = ["elf"]
    dragon.position = "after_char"
    out = to_sillytavern(lb)
    assert out["entries"]["9"]["key"] == ["elf"]
    assert out["entries"]["5"]["position"] == 1
    assert out["entries"]["5"]["caseSensitive"] is None
    # the ST position number survives a trip through the character_book format
    dragon.position = "before_char"
    cb = to_character_book(lb)
    assert cb["entries"][0]["extensions"]["position"] == 4
    assert to_sillytavern(parse_lorebook(cb))["entries"]["5"]["position"] == 4


def test_sillytavern_entry_keys_that_differ_from_uid_are_kept():
    st = {"entries": {"a": {"uid": 1, "key": ["x"], "content": "A"},
                      "7": {"uid": 2, "key": ["y"], "content": "B"},
                      "q": {"key": ["z"], "content": "C"}}}
    lb = parse_lorebook(copy.deepcopy(st))
    assert [e.id for e in lb.entries] == [1, 2, None]
    assert to_sillytavern(lb) == st
    lb.entries.append(entry(["n"], "new"))
    out = to_sillytavern(lb)
    assert list(out["entries"]) == ["a", "7", "q", "3"]  # the new one gets the first free uid
    assert out["entries"]["3"]["uid"] == 3 and out["entries"]["3"]["key"] == ["n"]


def test_books_built_in_code_export_to_every_format():
    lb = book(entry(["cat"], "Cats purr.", position="after_char"),
              entry(["dog"], "Dogs bark.", id=3), name="Pets")
    cb = to_character_book(lb)
    assert cb["name"] == "Pets" and cb["extensions"] == {}
    assert cb["entries"][0]["keys"] == ["cat"] and cb["entries"][0]["position"] == "after_char"
    assert "id" not in cb["entries"][0] and cb["entries"][1]["id"] == 3
    st = to_sillytavern(lb)
    assert set(st["entries"]) == {"0", "3"}
    assert st["entries"]["0"]["position"] == 1 and st["entries"]["3"]["key"] == ["dog"]
    assert parse_lorebook(st).entries[0].content == "Cats purr."
    v3 = to_lorebook_v3(lb)
    assert v3["spec"] == "lorebook_v3" and v3["data"]["entries"][0]["use_regex"] is False
    back = parse_lorebook(v3)
    assert [(e.keys, e.content, e.position, e.id) for e in back.entries] == [
        (["cat"], "Cats purr.", "after_char", None), (["dog"], "Dogs bark.", "before_char", 3)]
    assert back.entries[0].extra == {"use_regex": False}  # V3 field kept, as any unknown key


def test_parse_lorebook_bytes_with_bom():
    data = b"\xef\xbb\xbf" + json.dumps({"entries": []}).encode()
    lb = parse_lorebook_bytes(data)
    assert lb.entries == [] and lb.source_format == "character_book"


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("obj, words_in_message", [
    ([{"keys": ["a"]}], "object"),
    ({"name": "x"}, "entries"),
    ({"entries": "nope"}, "entries"),
    ({"entries": 5}, "entries"),
    ({"entries": ["not an object"]}, "Entry 1"),
    ({"entries": {"0": 3}}, "Entry \"0\""),
    ({"entries": [{"keys": 5, "content": "x"}]}, "keys"),
    ({"entries": [{"keys": ["a", 2], "content": "x"}]}, "keys"),
    ({"entries": {"0": {"key": 12, "content": "x"}}}, "key"),
    ({"entries": [{"keys": ["a"], "content": 42}]}, "content"),
    ({"entries": [{"keys": ["a"], "content": "x", "insertion_order": "soon"}]}, "insertion_order"),
    ({"entries": [{"keys": ["a"], "content": "x", "extensions": []}]}, "extensions"),
    ({"entries": [], "scan_depth": -1}, "scan_depth"),
    ({"spec": "lorebook_v3", "data": []}, "data"),
    ({"spec": "lorebook_v9", "data": {}}, "lorebook_v9"),
    ({"spec": "lorebook_v3", "data": {"name": "x"}}, "entries"),
    ({"spec": "lorebook_v3", "data": {"entries": {"0": {}}}}, "entries"),
])
def test_bad_input_raises_lore_error(obj, words_in_message):
    with pytest.raises(LoreError) as info:
        parse_lorebook(obj)
    assert words_in_message in str(info.value)


def test_character_card_handed_in_by_mistake():
    with pytest.raises(LoreError, match="character card"):
        parse_lorebook({"name": "Aqua", "first_mes": "Hi!", "description": "a goddess"})
    with pytest.raises(LoreError, match="character card"):
        parse_lorebook({"spec": "chara_card_v2", "data": {"name": "Seraphina", "first_mes": "Hello"}})


def test_real_card_png_json_is_not_a_lorebook():
    card = read_card((CARDS / "default_Seraphina.png").read_bytes())
    with pytest.raises(LoreError, match="character card"):
        parse_lorebook(card)


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe\x00", b"[1, 2"])
def test_bad_bytes_raise_lore_error(data):
    with pytest.raises(LoreError):
        parse_lorebook_bytes(data)


def test_lore_error_is_a_value_error():
    assert issubclass(LoreError, ValueError)


# --------------------------------------------------------------------------- activation

def test_key_in_last_message_activates():
    lb = book(entry(["dragon"], "Dragons hoard gold."))
    got = activate([lb], ["hello", "I saw a dragon!"], words)
    assert len(got) == 1
    assert got[0].reason == "key: dragon" and got[0].book_name == "book"
    assert got[0].tokens == 3


def test_key_older_than_scan_depth_does_not_activate():
    lb = book(entry(["dragon"]))
    texts = ["the dragon", "hello", "how are you"]
    assert activate([lb], texts, words, scan_depth=2) == []
    assert len(activate([lb], texts, words, scan_depth=3)) == 1
    assert activate([lb], texts, words, scan_depth=0) == []


def test_case_insensitive_by_default_and_case_sensitive_respected():
    loose = entry(["Dragon"], "loose")
    strict = entry(["Dragon"], "strict", case_sensitive=True)
    lb = book(loose, strict)
    assert [a.entry.content for a in activate([lb], ["a DRAGON flies"], words)] == ["loose"]
    assert [a.entry.content for a in activate([lb], ["a Dragon flies"], words)] == ["loose", "strict"]


def test_whole_word_matching():
    lb = book(entry(["cat"], "cat lore"), entry(["c++"], "cpp lore"), entry(["new york"], "ny"))
    assert activate([lb], ["let us concatenate strings"], words) == []
    assert activate([lb], ["cats everywhere"], words) == []
    assert reasons(activate([lb], ["my cat, Tom."], words)) == ["key: cat"]
    # the key ends with a non-word character: plain substring at that end
    assert reasons(activate([lb], ["I write c++code"], words)) == ["key: c++"]
    assert reasons(activate([lb], ["Off to New York tomorrow"], words)) == ["key: new york"]


def test_selective_needs_a_secondary_key():
    sel = entry(["sword"], "sword lore", selective=True, secondary_keys=["fire", "ice"])
    lb = book(sel)
    assert activate([lb], ["a sword"], words) == []
    assert reasons(activate([lb], ["a sword of ice"], words)) == ["key: sword"]
    assert activate([lb], ["just ice"], words) == []
    # selective without secondary keys behaves like a plain entry
    assert len(activate([book(entry(["sword"], selective=True))], ["a sword"], words)) == 1
    # secondary keys are ignored when the entry is not selective
    assert len(activate([book(entry(["sword"], secondary_keys=["fire"]))], ["a sword"], words)) == 1


def test_selective_logic_from_sillytavern():
    not_any = entry(["sword"], "x", selective=True, secondary_keys=["fire"], extra={"selectiveLogic": 2})
    assert len(activate([book(not_any)], ["a sword"], words)) == 1
    assert activate([book(not_any)], ["a sword on fire"], words) == []
    and_all = entry(["sword"], "x", selective=True, secondary_keys=["fire", "ice"],
                    extensions={"selectiveLogic": 3})
    assert activate([book(and_all)], ["a sword on fire"], words) == []
    assert len(activate([book(and_all)], ["a sword of fire and ice"], words)) == 1


def test_constant_always_disabled_never_keyless_never():
    lb = book(entry([], "always here", constant=True),
              entry(["dragon"], "off", enabled=False),
              entry(["dragon"], "off but constant", enabled=False, constant=True),
              entry([], "no keys"),
              entry(["  ", ""], "blank keys"))
    got = activate([lb], ["dragon dragon"], words)
    assert [(a.entry.content, a.reason) for a in got] == [("always here", "constant")]
    assert reasons(activate([lb], [], words)) == ["constant"]


def test_insertion_order_then_book_then_entry_order():
    a = book(entry(["x"], "a-late", insertion_order=300), entry(["x"], "a-mid", insertion_order=100),
             name="A")
    b = book(entry(["x"], "b-early", insertion_order=5), entry(["x"], "b-mid", insertion_order=100),
             name="B")
    got = activate([a, b], ["x"], words)
    assert [g.entry.content for g in got] == ["b-early", "a-mid", "b-mid", "a-late"]
    assert [g.book_name for g in got] == ["B", "A", "B", "A"]


def test_token_budget_skips_what_does_not_fit_and_keeps_smaller_later_ones():
    lb = book(entry(["x"], "one two three four", insertion_order=1),
              entry(["x"], "one two three four five six", insertion_order=2),
              entry(["x"], "one two", insertion_order=3),
              entry(["x"], "one two three", insertion_order=4))
    got = activate([lb], ["x"], words, token_budget=7)
    assert [g.tokens for g in got] == [4, 2]
    assert sum(g.tokens for g in got) <= 7
    assert len(activate([lb], ["x"], words, token_budget=None)) == 4
    assert activate([lb], ["x"], words, token_budget=1) == []


def test_book_scan_depth_and_token_budget_override():
    deep = book(entry(["dragon"], "deep lore"), name="deep", scan_depth=5)
    shallow = book(entry(["dragon"], "shallow lore"), name="shallow", scan_depth=1)
    texts = ["a dragon", "b", "c"]
    got = activate([deep, shallow], texts, words, scan_depth=2)
    assert [g.book_name for g in got] == ["deep"]
    got = activate([shallow], ["c", "dragon"], words, scan_depth=0)
    assert [g.book_name for g in got] == ["shallow"]

    capped = book(entry(["x"], "one two three", insertion_order=1),
                  entry(["x"], "one two", insertion_order=2),
                  entry(["x"], "one", insertion_order=3), name="capped", token_budget=4)
    free = book(entry(["x"], "five words in this entry", insertion_order=2), name="free")
    got = activate([capped, free], ["x"], words, token_budget=100)
    assert [(g.book_name, g.tokens) for g in got] == [("capped", 3), ("free", 5), ("capped", 1)]


def test_activation_on_real_eldoria(eldoria_bytes):
    lb = parse_lorebook_bytes(eldoria_bytes)
    got = activate([lb], ["Where am I?", "What happened to the Forest?"], words, token_budget=10_000)
    assert [g.entry.id for g in got] == [0]
    assert got[0].reason == "key: forest"
    # "beasts" is a whole word; "glade" inside "glades" is not
    got = activate([lb], ["beasts roam the glades"], words, token_budget=10_000)
    assert [g.reason for g in got] == ["key: beasts"]
