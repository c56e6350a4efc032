"""Every route of every dialect fuzzed with bad input (#28): wrong types, huge strings, NaN and
infinity, lone surrogates, deep nesting, empty bodies, wrong content types, bad base64 and
out-of-bound options, over each route in the app's URL map (not only the documented ones that
tests/test_fuzz.py checks against /api/openapi.json).

For every answer: no 5xx (but a 501/503 the app means: a part not installed, the model not ready),
and every error in its dialect's shape (app.py: plain text for the AI Companion API, {"error": "..."}
for Ollama, llama.cpp's and OpenAI's own shapes, {"error": {"code", "message"}} for ours and
KoboldCpp's). Bounded: a fixed number of examples a route and a deadline each. The fast fake
generator answers; the embedder, SQLite and Chroma are the real ones. Afterwards the app answers
as before."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tempfile
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from conftest import test_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_fuzz import FakeGenerator

from companion.api.openapi import openapi_document
from companion.app import create_app
from companion.services import build_services

# a route's examples; FUZZ_EXAMPLES=500 FUZZ_RANDOM=1 hunts longer, with new examples each run
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
DERANDOMIZE = not os.environ.get("FUZZ_RANDOM")
DEADLINE = timedelta(seconds=15)       # an example: never a hang
SOURCES = Path(__file__).resolve().parents[1] / "companion"
# the names handlers and parsers read: every short quoted identifier in them (extra keys do no harm)
KEYS = sorted({key for path in [*SOURCES.glob("api/*.py"), *(SOURCES / name for name in (
    "formats/cards.py", "formats/chat_files.py", "characters/lore.py", "characters/lorebooks.py", "characters/presets.py",
    "formats/documents.py", "chat/groups.py"))]
    for key in re.findall(r'"([a-z_][a-zA-Z0-9_]{1,30})"', path.read_text())})
ENDLESS = {"/api/events"}             # a stream that never ends (tests/test_events.py reads it)
OUT_OF_BAND = {501, 503}              # what a 5xx may be: a part not installed, the model not ready

# -- values ------------------------------------------------------------------------------------

NASTY_STRINGS = [
    "", " ", "\x00", "\ud800", "a\udc00b", "\U0001f4a5" * 40, "x" * 100_001, "y" * 300_000,
    "{{char}}", "<BOT>", "../../../etc/passwd", "%00", "-1", "1e309", "NaN", "Infinity", "null", "true",
    "0x10", "\u00b2", "-\u00b3", "\uff11\uff12", "\u0663", "9" * 5000, "-" + "9" * 5000, "1" * 20,
    "2026-13-45T99:99:99", "0001-01-01", "9999-12-31T23:59:59+14:00", "companion", "companion:1",
    "companion/1", "memory/1", "memory/999999999999", "hf.co/a/b:Q4_K_M", "user", "assistant", "\n\n\n",
    "\u202e\u0000\ufeff", "'; drop table messages; --", "*", "\"", "\\", "a" * 201,
]
SURROGATES = st.lists(st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from("ab "), min_size=1, max_size=8).map(
    "".join)
ALMOST_INTS = st.sampled_from([0, -1, 1, 2, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**40])
FLOATS = st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324, 0.5, 1.5, -1.5])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), ALMOST_INTS, st.floats(), FLOATS,
                    st.sampled_from(NASTY_STRINGS), st.text(max_size=20), SURROGATES)


def nested(depth: int) -> object:
    value: object = 1
    for n in range(depth):
        value = [value] if n % 2 else {"a": value}
    return value


NASTY = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), SCALARS, max_size=4),
    st.sampled_from([30, 33, 80]).map(nested),
)


def message() -> st.SearchStrategy:
    part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio"]) | NASTY},
                                 optional={"text": st.just("hi") | NASTY})
    return st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "bogus"]) | NASTY,
         "content": st.one_of(st.just("hello there"), NASTY, st.lists(part, max_size=3))},
        optional={"images": NASTY, "name": NASTY, "ai": NASTY, "text": NASTY, "date": NASTY})


TEXT = st.just("hello there") | st.sampled_from(NASTY_STRINGS)
# values that pass a field's first check, so that the fuzz reaches the checks behind it
PLAUSIBLE: dict[str, st.SearchStrategy] = {
    "messages": st.lists(message(), min_size=1, max_size=3),
    "options": st.dictionaries(st.sampled_from(["temperature", "top_p", "top_k", "min_p", "num_predict", "stop",
                                                "seed", "repeat_penalty", "num_ctx", "mirostat"]), NASTY, max_size=4),
    "model": st.sampled_from(["", "companion", "companion:1", "companion/1", "memory/1", "memory/1/fake.gguf",
                              "fake", "fake.gguf", "fake:latest", "all-minilm", "hf.co/a/b", "companion:99999",
                              "companion:" + "9" * 20, "memory/" + "9" * 20, "companion/" + "9" * 20]),
    "stream": st.booleans(), "raw": st.booleans(), "speak": st.booleans(), "add_special": st.booleans(),
    "with_pieces": st.booleans(), "tokens": st.lists(st.integers(-5, 2**40) | NASTY, max_size=5),
    "stop": st.lists(TEXT, max_size=5) | TEXT, "input": TEXT | st.lists(TEXT, max_size=3),
    "id": st.integers(0, 5) | ALMOST_INTS, "chat_id": st.integers(0, 5), "companion_id": st.integers(0, 5),
    "member_ids": st.lists(st.integers(0, 5), max_size=3), "entries": st.lists(NASTY, max_size=3),
    "generation": st.dictionaries(st.sampled_from(["temperature", "max_tokens", "top_k", "stop", "seed"]), NASTY,
                                  max_size=3),
    "model_settings": NASTY,
}
for key in ("prompt", "text", "content", "new_text", "name", "persona", "system", "suffix", "user_name",
            "companion_name", "first_message", "description", "keys", "voice", "response_format", "query", "q"):
    PLAUSIBLE[key] = TEXT


def value_for(key: str) -> st.SearchStrategy:
    return (PLAUSIBLE[key] | NASTY) if key in PLAUSIBLE else NASTY


@st.composite
def json_object(draw, schema: dict | None = None) -> dict:
    """A JSON object: the documented fields (each valid, or bad, or left out) and a few others."""
    out = {}
    if schema and schema.get("properties") and draw(st.integers(0, 3)):   # valid but for one field (or none)
        required = set(schema.get("required") or ())
        for key, field in schema["properties"].items():
            if key in required or draw(st.booleans()):
                out[key] = draw(valid(field))
        bad = draw(st.sampled_from([None, *schema["properties"]]) | st.sampled_from(KEYS))
        if bad is not None:
            out[bad] = draw(value_for(bad))
        return out
    if schema and schema.get("properties"):
        required = set(schema.get("required") or ())
        for key, field in schema["properties"].items():
            choice = draw(st.sampled_from(["valid", "valid", "bad", "out"] if key in required else
                                          ["valid", "bad", "out", "out"]))
            if choice == "valid":
                out[key] = draw(valid(field))
            elif choice == "bad":
                out[key] = draw(value_for(key))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3 if schema else 6, unique=True)):
        out.setdefault(key, draw(value_for(key)))
    return out


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def valid(schema: dict, depth: int = 0) -> st.SearchStrategy:
    """A value the schema allows (roughly: enough to pass a field's checks and reach the next)."""
    schema = resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of([valid(s, depth + 1) for s in schema[key]])
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer":
        return st.integers(int(low if low is not None else 0), int(high if high is not None else 5))
    if kind == "number":
        return st.floats(float(low if low is not None else 0), float(high if high is not None else 1))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.just("2026-11-27T15:00:00+01:00")
        return st.just("hello there")
    if kind == "array":
        low_items = schema.get("minItems", 0)
        return st.lists(valid(schema.get("items", {}), depth + 1), min_size=low_items,
                        max_size=max(low_items, min(schema.get("maxItems", 3), 3)))
    if kind == "object" and depth < 4:
        required = schema.get("required") or []
        return st.fixed_dictionaries({k: valid(v, depth + 1) for k, v in schema.get("properties", {}).items()
                                      if k in required},
                                     optional={k: valid(v, depth + 1) for k, v in schema.get("properties", {}).items()
                                               if k not in required})
    return st.none()


# -- bodies ------------------------------------------------------------------------------------

def png(text: dict[str, str] | None = None, size: tuple[int, int] = (2, 2)) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def b64(data: object) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


CARD = {"spec": "chara_card_v2", "data": {"name": "Ann", "description": "x", "first_mes": "hi"}}
FILES = [
    b"", b"\x00", b"\xff\xfe\xfd", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, png(), png(size=(1, 4000)),
    png({"chara": "not base64 !!!"}), png({"chara": "e30"}), png({"chara": b64([1, 2])}), png({"chara": b64("x")}),
    png({"chara": b64({"spec": "chara_card_v2", "data": None})}), png({"chara": b64(CARD), "ccv3": "%%%"}),
    png({"chara": base64.b64encode(b"\xff\xfe").decode()}), json.dumps(CARD).encode(), b'{"entries": {"1": null}}',
    b"RIFF\x24\x00\x00\x00WAVEfmt ", b"ID3\x03\x00" + b"\x00" * 20, b"GIF89a", b"PK\x03\x04" + b"\x00" * 26,
    zlib.compress(b"x" * 1000), b'{"name": "\\ud800"}', b"[" * 50, "name: \udc00".encode("utf-8", "surrogatepass"),
]
CONTENT_TYPES = [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                 "image/png", "application/json; charset=utf-16", "application/octet-stream", "audio/wav", "x/y;;;"]


def json_bytes(value: object) -> bytes:
    """JSON as Python writes it: NaN and Infinity as bare words, lone surrogates escaped."""
    return json.dumps(value).encode()


@st.composite
def body(draw, schema: dict | None) -> dict:
    """Keyword arguments for the test client: data and content_type (schema: the documented
    JSON body, None when there is none)."""
    kind = draw(st.sampled_from(["none", "object", "object", "object", "object", "object", "value", "bytes", "deep",
                                 "multipart", "form"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if kind == "none":
        return {"content_type": content_type}
    if kind == "object":
        return {"data": json_bytes(draw(json_object(schema))), "content_type": draw(st.sampled_from(
            ["application/json", "application/json", "application/json", None, "text/plain"]))}
    if kind == "value":
        return {"data": json_bytes(draw(NASTY)), "content_type": "application/json"}
    if kind == "bytes":
        data = draw(st.sampled_from(FILES) | st.binary(max_size=64) | st.sampled_from(
            [b"{", b'{"a":', b"nul", b"{}}", b'{"a": 1,}', b"\xef\xbb\xbf{}", "{}".encode("utf-16")]))
        return {"data": data, "content_type": content_type}
    if kind == "deep":
        depth = draw(st.sampled_from([33, 1000, 100_000]))
        return {"data": b'{"a":' * depth + b"1" + b"}" * depth, "content_type": "application/json"}
    fields = {key: form_value(draw(value_for(key))) for key in draw(st.lists(st.sampled_from(KEYS), max_size=4))}
    if kind == "multipart":
        if draw(st.booleans()):
            name = draw(st.sampled_from(["file", "file", "image", "card", "audio"]))
            fields[name] = (io.BytesIO(draw(st.sampled_from(FILES))), draw(st.sampled_from(
                ["a.png", "a.json", "a.wav", "", "../../x.png", "a" * 300])))
        return {"data": fields, "content_type": "multipart/form-data"}
    return {"data": fields, "content_type": "application/x-www-form-urlencoded"}


def form_value(value: object) -> str:
    """A form field or query value: text, lone surrogates kept as the bad UTF-8 they become."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@st.composite
def query(draw) -> str:
    keys = draw(st.lists(st.sampled_from(["q", "format", "stream", "size", "tags", "sort", "order", "limit",
                                          "offset", "companion_id", "chat_id", "before", "after", "since",
                                          "source", "last_event_id", "language"]), max_size=4))
    pairs = []
    for key in keys:
        value = draw(value_for(key))
        raw = (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "surrogatepass")
        pairs.append(f"{key}={quote_from_bytes(raw[:2000])}")
    return "&".join(pairs)


HEADERS = st.fixed_dictionaries({}, optional={
    "Accept": st.sampled_from(["text/event-stream", "application/json", "*/*", "garbage"]),
    "X-Companion-Memory": st.sampled_from(["1", "0", "-1", "x", "99999999999999999999", "1,2", ""]),
    "Last-Event-ID": st.sampled_from(["1", "-1", "x", "9" * 100]),
    "Content-Encoding": st.sampled_from(["gzip", "br"]),
})


def path_for(rule, draw) -> str:
    values = {arg: draw(st.integers(0, 4) | ALMOST_INTS.filter(lambda n: n >= 0)) for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1] if values else rule.rule


DOCUMENT = openapi_document()


def documented_body(path: str, method: str) -> dict | None:
    """The JSON body /api/openapi.json documents for a route (None: none documented)."""
    operation = DOCUMENT["paths"].get(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path), {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return resolve(schema) if schema else None


# -- the dialects' error shapes ----------------------------------------------------------------

def dialect(rule) -> str:
    blueprint = rule.endpoint.split(".")[0] if "." in rule.endpoint else ""
    if blueprint in ("compat", "ollama", "llamacpp"):
        return blueprint
    return "openai" if rule.rule.startswith("/v1/") else "ours"


def check_error_shape(kind: str, response) -> None:
    status = response.status_code
    if kind == "compat":
        assert response.mimetype == "text/plain" and response.get_data(as_text=True).strip(), response.data[:300]
        return
    assert response.mimetype == "application/json", (response.mimetype, response.data[:300])
    error = response.get_json()["error"]
    if kind == "ollama":
        assert isinstance(error, str) and error
    elif kind == "llamacpp":
        assert error["code"] == status and isinstance(error["message"], str) and isinstance(error["type"], str)
    elif kind == "openai":
        assert isinstance(error["message"], str) and isinstance(error["type"], str) and "param" in error
        assert isinstance(error["code"], str)
    else:
        assert isinstance(error["code"], str) and isinstance(error["message"], str), error


# -- the run -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, embedder):
    settings_ = test_settings(tmp_path_factory.mktemp("fuzz-dialects"), model={"allow_pull": False})
    services = build_services(settings_, generator=FakeGenerator(), embedder=embedder)
    app = create_app(settings_, services)
    yield app
    services.close()


def operations() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(test_settings(Path(folder)), services=_NoServices())  # type: ignore[arg-type]
        found = {(rule.rule, method) for rule in app.url_map.iter_rules()
                 for method in rule.methods - {"HEAD", "OPTIONS"}
                 if rule.endpoint not in ("static", "index") and rule.rule not in ENDLESS}
    # what deletes or reconfigures goes last, so that the rest meets the seeded companion and chat
    return sorted(found, key=lambda pair: (pair[1] == "DELETE", pair[0] in ("/api/config",), pair))


class _NoServices:
    """Enough of Services for create_app to build the URL map."""


OPERATIONS = operations()


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_route_survives_bad_input(fuzz_app, path, method):
    rule = next(r for r in fuzz_app.url_map.iter_rules() if r.rule == path and method in r.methods)
    kind = dialect(rule)
    schema = documented_body(path, method)
    client = fuzz_app.test_client()

    @given(data=st.data())
    @settings(max_examples=EXAMPLES, deadline=DEADLINE, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    def run(data):
        url = path_for(rule, data.draw)
        kwargs = data.draw(body(schema)) if method in ("POST", "PUT", "PATCH", "DELETE") else {}
        response = client.open(url, method=method, query_string=data.draw(query()), headers=data.draw(HEADERS),
                               **kwargs)
        content = response.get_data()      # a stream runs to its end here
        status = response.status_code
        assert status < 500 or status in OUT_OF_BAND, (status, content[:500])
        if status >= 400:
            check_error_shape(kind, response)
            if status >= 500:
                assert b"internal" not in content, content[:500]

    run()


def test_healthy_after_the_fuzz(fuzz_app):
    client = fuzz_app.test_client()
    status = client.get("/api/status")
    assert status.status_code == 200, status.data[:300]
    reply = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200, reply.data[:300]
    assert reply.get_json()["choices"][0]["message"]["content"] == "Hello from the fake model."


# -- the defects this fuzz found, each pinned ----------------------------------------------------

def test_a_lone_surrogate_in_json_is_mended_not_a_500(fuzz_app):
    """JSON's "\\ud800" (half an emoji, as JavaScript writes it) used to reach SQLite and fail there."""
    client = fuzz_app.test_client()
    body = b'{"new_text": "x", "companion_name": "Ann \\ud800", "text": "a \\ud83d\\ude00 b"}'
    changed = client.post("/api/change/companionName", data=body, content_type="application/json")
    assert changed.status_code == 200, changed.data
    assert client.get("/api/companionData").get_json()["name"] == "Ann \ufffd"
    card = b'{"name": "\\udc00Zed", "description": "", "first_mes": "hi", "mes_example": ""}'
    imported = client.post("/api/import/characterCard", data=card, content_type="application/json")
    assert imported.status_code == 200, imported.data      # a card file's JSON too


def test_ollama_messages_that_are_not_a_list_are_a_400(fuzz_app):
    for route in ("/api/chat", "/api/generate"):
        response = fuzz_app.test_client().post(route, json={"messages": True, "prompt": "x"})
        assert response.status_code in (200, 400) and response.status_code != 500, response.data
    response = fuzz_app.test_client().post("/api/chat", json={"messages": 1.5})
    assert response.status_code == 400 and isinstance(response.get_json()["error"], str)


def test_companion_ids_past_sqlite_are_not_found_not_an_overflow(fuzz_app):
    client = fuzz_app.test_client()
    big = "9" * 20
    messages = [{"role": "user", "content": "hi"}]
    for model in (f"companion:{big}", f"memory/{big}"):
        assert client.post("/v1/chat/completions", json={"model": model, "messages": messages}).status_code == 404
    assert client.post("/api/chat", json={"model": f"companion/{big}", "messages": messages}).status_code == 404
    header = client.post("/v1/chat/completions", json={"messages": messages}, headers={"X-Companion-Memory": big})
    assert header.status_code == 400, header.data


def test_digit_strings_python_cannot_read_as_int_are_a_400(fuzz_app):
    client = fuzz_app.test_client()
    for value in ("\u00b2", "9" * 5000):
        response = client.post("/api/removeMessage", json={"id": value})
        assert response.status_code == 400 and response.mimetype == "text/plain", response.data


def test_a_lorebook_file_that_nests_too_deeply_is_a_400(fuzz_app):
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    response = fuzz_app.test_client().post("/api/lorebooks/import", data=deep, content_type="application/json")
    assert response.status_code == 400, response.data[:300]
