"""The /v1 API driven by the official openai package, in-process over WSGI, on the real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import openai
import pytest

from companion.model.local import bundled_model

MODEL = bundled_model().name      # the serving model, by the name /v1/models lists


@pytest.fixture
def oai(app) -> openai.OpenAI:
    transport = httpx.WSGITransport(app=app)
    return openai.OpenAI(base_url="http://localhost/v1", api_key="unused",
                         http_client=httpx.Client(transport=transport, base_url="http://localhost"))


def test_models(oai):
    ids = [m.id for m in oai.models.list().data]
    assert ids[0].endswith(".gguf") and "companion" in ids and any(i.startswith("companion:") for i in ids)


def test_plain_chat_completion(oai, client):
    before = client.get("/api/messages").get_json()
    result = oai.chat.completions.create(model=MODEL, temperature=0, max_tokens=12, seed=1,
                                         messages=[{"role": "system", "content": "You are terse."},
                                                   {"role": "user", "content": "Name a colour."}])
    choice = result.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length") and result.usage.completion_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert client.get("/api/messages").get_json() == before      # the plain model stores nothing


def test_plain_chat_stream(oai):
    stream = oai.chat.completions.create(model=MODEL, stream=True, temperature=0, max_tokens=10,
                                         messages=[{"role": "user", "content": "Say hello."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip() and chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_companion_chat_is_stored_like_a_prompt(oai, client):
    result = oai.chat.completions.create(model="companion", temperature=0, max_tokens=10,
                                         messages=[{"role": "user", "content": "Hi, I am Ada."}])
    text = result.choices[0].message.content
    messages = client.get("/api/messages").get_json()
    assert messages[-2]["text"] == "Hi, I am Ada." and messages[-1]["text"] == text
    # the prompt the companion built (card, history, the message) is counted, not reported as 0
    assert result.usage.prompt_tokens > 20 and 0 < result.usage.completion_tokens <= 10
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    stream = oai.chat.completions.create(model="companion", stream=True, temperature=0, max_tokens=10,
                                         messages=[{"role": "user", "content": "Do you remember me?"}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream)
    assert client.get("/api/messages").get_json()[-1]["text"] == streamed


def test_completions_and_embeddings(oai):
    result = oai.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert result.choices[0].text and result.usage.prompt_tokens > 0
    pieces = list(oai.completions.create(model=MODEL, prompt="One, two,", max_tokens=6, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in pieces)
    embedded = oai.embeddings.create(model="whatever", input=["hello world", "good night"])
    assert len(embedded.data) == 2 and len(embedded.data[0].embedding) == 384


def test_bad_requests_in_openai_error_shape(oai, client):
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=MODEL, messages=[], max_tokens=5)
    assert info.value.body["type"] == "invalid_request_error" and "messages" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=9)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="companion:999", messages=[{"role": "user", "content": "x"}])
    response = client.post("/v1/embeddings", json={"input": []})
    assert response.status_code == 400 and response.get_json()["error"]["type"] == "invalid_request_error"


def test_model_names_mean_models(oai, services, settings):
    """An unknown model is a 404 (model_not_found); another model file of /v1/models loads by its
    name; companion and companion:<id> stay the companion."""
    for unknown in ("no-such-model:7b", "gpt-4o", "companion:x"):
        with pytest.raises(openai.NotFoundError) as info:
            oai.chat.completions.create(model=unknown, messages=[{"role": "user", "content": "x"}], max_tokens=2)
        assert info.value.body["code"] == "model_not_found" and unknown in info.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="no-such-model", prompt="Once", max_tokens=2)
    folder = Path(settings.data_dir) / "models"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(bundled_model(), folder / "SmolLM2-Second.gguf")
    ids = [m.id for m in oai.models.list().data]
    assert ids[:2] == [MODEL, "SmolLM2-Second.gguf"] and "companion" in ids
    result = oai.chat.completions.create(model="SmolLM2-Second.gguf", messages=[{"role": "user", "content": "Hi."}],
                                         max_tokens=4, temperature=0)
    assert result.choices[0].message.content and result.model == "SmolLM2-Second.gguf"
    assert Path(services.generator.path).name == "SmolLM2-Second.gguf"
    assert [m.id for m in oai.models.list().data][:2] == ["SmolLM2-Second.gguf", MODEL]
    stream = oai.completions.create(model=MODEL, prompt="One, two,", max_tokens=4, temperature=0, stream=True)
    assert "".join(p.choices[0].text for p in stream) and Path(services.generator.path).name == MODEL


FACT = "My sister Ingrid lives in Tromsø and keeps bees."
QUESTION = "Where does my sister live?"


def memories_of(client, companion_id: int) -> list[dict]:
    return client.get(f"/api/memories?companion_id={companion_id}&limit=100").get_json()["items"]


def test_memory_for_a_frontends_own_prompt(oai, client, services):
    """memory/<id> (or X-Companion-Memory): the client's messages as the plain model gets them,
    with the companion's memories for the newest user message in the system message, and the
    exchange remembered; X-Companion-Memories says which were put in."""
    companion = services.companions.active_companion_id()
    before = services.store.count("memories")
    plain = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": FACT}], max_tokens=6,
                                        temperature=0)
    assert plain.choices[0].message.content and services.store.count("memories") == before   # no opt-in: nothing

    told = oai.chat.completions.with_raw_response.create(
        model=f"memory/{companion}", max_tokens=8, temperature=0,
        messages=[{"role": "system", "content": "You are a friendly assistant."}, {"role": "user", "content": FACT}])
    assert told.headers["X-Companion-Memories"] == ""                # nothing to recall yet
    reply = told.parse().choices[0].message.content
    first = memories_of(client, companion)[0]
    assert first["text"] == f"{{{{user}}}}: {FACT}\n{{{{char}}}}: {reply.strip()}" and first["source"] == "client"

    messages = [{"role": "system", "content": "You are a friendly assistant."}, {"role": "user", "content": QUESTION}]
    asked = oai.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=8, temperature=0,
                                                         extra_headers={"X-Companion-Memory": str(companion)})
    assert asked.headers["X-Companion-Memories"].split(",")[0] == str(first["id"])     # recalled
    without = oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    assert asked.parse().usage.prompt_tokens > without.usage.prompt_tokens + 10        # and put in the prompt
    second = memories_of(client, companion)[0]
    assert second["id"] > first["id"] and second["text"].startswith(f"{{{{user}}}}: {QUESTION}\n{{{{char}}}}: ")

    streamed = oai.chat.completions.with_raw_response.create(
        model=f"memory/{companion}/{MODEL}", stream=True, max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": FACT}, {"role": "assistant", "content": reply},
                  {"role": "user", "content": "Does she sell the honey?"}])
    recalled = streamed.headers["X-Companion-Memories"].split(",")
    assert str(first["id"]) not in recalled                          # its text is in the messages already
    text = "".join(c.choices[0].delta.content or "" for c in streamed.parse())
    third = memories_of(client, companion)[0]
    assert third["text"] == f"{{{{user}}}}: Does she sell the honey?\n{{{{char}}}}: {text.strip()}"


def test_memory_errors_in_openai_shape(oai, client):
    for kwargs in ({"model": "memory/999"}, {"model": MODEL, "extra_headers": {"X-Companion-Memory": "999"}}):
        with pytest.raises(openai.NotFoundError) as info:
            oai.chat.completions.create(messages=[{"role": "user", "content": "x"}], max_tokens=2, **kwargs)
        assert "999" in info.value.body["message"]
    for kwargs in ({"model": "companion", "extra_headers": {"X-Companion-Memory": "1"}},
                   {"model": MODEL, "extra_headers": {"X-Companion-Memory": "one"}}):
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(messages=[{"role": "user", "content": "x"}], max_tokens=2, **kwargs)
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="memory/1", prompt="Once", max_tokens=2)
    assert "chat" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="memory/1", messages=[{"role": "system", "content": "x"}], max_tokens=2)
