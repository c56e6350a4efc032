"""The official `ollama` Python client, unchanged, against a live daemon over HTTP (#17).

test_ollama_api.py checks the routes' shapes with Flask's test client; this checks that the
real library parses them: its pydantic types, NDJSON streaming, ResponseError on errors, and a
client that goes away mid-stream.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import ollama
import pytest
import requests
from conftest import test_settings
from web import serve

from companion.model.local import bundled_model
from companion.names import ollama_tag

OPTIONS = {"temperature": 0, "num_predict": 8, "seed": 1}
MODEL = ollama_tag(bundled_model())     # the serving model, as /api/tags names it


@pytest.fixture
def daemon(tmp_path, generator, embedder):
    live, stop = serve(test_settings(tmp_path / "data"), generator, embedder)
    yield live
    stop()


@pytest.fixture
def client(daemon):
    with ollama.Client(host=daemon.url, timeout=120) as client:
        yield client


def companion_model(daemon) -> str:
    return f"companion/{daemon.services.companions.active_companion_id()}"


def test_list_show_and_ps(client, daemon):
    models = client.list().models
    names = [m.model for m in models]
    assert names[0].startswith("smollm2-135m-instruct") and f"{companion_model(daemon)}:latest" in names
    assert models[0].size > 0 and models[0].details.format == "gguf" and models[0].modified_at.tzinfo
    shown = client.show(names[0])
    assert "<|im_start|>" in shown.template and shown.modelinfo["general.architecture"] == "llama"
    assert "num_ctx" in shown.parameters and shown.details.family == "llama"
    assert client.show(companion_model(daemon)).template == shown.template
    running = client.ps().models
    assert [m.model for m in running] == [names[0]] and running[0].size > 0
    assert running[0].expires_at.year > 2200                           # loaded for good: Ollama's "never"


def test_generate_whole_and_streamed(client):
    whole = client.generate(model=MODEL, prompt="Name a colour.", options=OPTIONS)
    assert isinstance(whole, ollama.GenerateResponse) and whole.done and whole.response
    assert whole.done_reason in ("stop", "length") and 0 < whole.eval_count <= 8 and whole.prompt_eval_count > 3
    chunks = list(client.generate(model=MODEL, prompt="Name a colour.", options=OPTIONS, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done and chunks[-1].total_duration > 0
    assert "".join(c.response for c in chunks) == whole.response          # seeded, temperature 0: the same text


def test_chat_whole_and_streamed(client):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
    whole = client.chat(model=MODEL, messages=messages, options=OPTIONS)
    assert whole.message.role == "assistant" and whole.message.content and whole.done
    chunks = list(client.chat(model=MODEL, messages=messages, options=OPTIONS, stream=True))
    assert len(chunks) > 2 and chunks[-1].done and chunks[-1].eval_count == whole.eval_count
    assert "".join(c.message.content for c in chunks) == whole.message.content


def test_embed_and_the_older_embeddings(client):
    both = client.embed(model="all-minilm", input=["hello", "world"])
    assert len(both.embeddings) == 2 and len(both.embeddings[0]) == 384 and both.prompt_eval_count == 2
    one = client.embed(model="all-minilm", input="hello")
    old = client.embeddings(model="all-minilm", prompt="hello")
    assert one.embeddings[0] == both.embeddings[0] == pytest.approx(list(old.embedding))


def test_the_companion_remembers_across_chats(client, daemon):
    """A companion chat goes into the companion's active daemon chat (the client's earlier
    messages are not replayed); the exchange becomes a memory, recalled in a new chat."""
    model = companion_model(daemon)
    first_chat = daemon.active_chat()["id"]
    told = client.chat(model=model, messages=[{"role": "user", "content": "My sister's name is Oona."}],
                       options=OPTIONS)
    assert told.done and told.message.content
    said = [m["text"] for m in daemon.messages(first_chat)]
    assert said[-2:] == ["My sister's name is Oona.", told.message.content]
    found = daemon.api("GET", "/api/memories?q=sister")["items"]
    assert "Oona" in found[0]["text"]

    second_chat = daemon.api("POST", "/api/chats", json={})["id"]      # a new chat becomes the active one
    chunks = list(client.chat(model=model, messages=[{"role": "user", "content": "What is my sister called?"}],
                              options=OPTIONS, stream=True))
    assert chunks[-1].done
    reply = daemon.messages(second_chat)[-1]
    assert reply["ai"] and reply["text"] == "".join(c.message.content for c in chunks)
    assert [m["text"] for m in daemon.messages(first_chat)] == said       # the first chat is as it was
    recalled = daemon.api("GET", f"/api/messages/{reply['id']}/context")["memories"]
    assert any("Oona" in m["text"] for m in recalled)


def test_a_client_that_goes_away_stops_the_generation(client, daemon):
    daemon.generator.pace = 0.2                  # slow enough that the reply is still going when the client leaves
    stopped = daemon.generator.stopped
    stream = client.generate(model=MODEL, prompt="Tell me a long story.", stream=True,
                             options={"temperature": 0, "num_predict": 200})
    assert [next(stream).done for _ in range(3)] == [False] * 3
    stream.close()                               # leaves the `with` of its streamed response: the connection closes
    client.close()
    daemon.generator.pace = 0
    for _ in range(100):                         # the daemon notices at its next write
        if daemon.generator.stopped > stopped:
            break
        requests.get(daemon.url + "/api/version", timeout=5)
        time.sleep(0.1)
    assert daemon.generator.stopped == stopped + 1
    with ollama.Client(host=daemon.url, timeout=120) as again:     # the model is free: no 429
        assert again.generate(model=MODEL, prompt="Hi.", options={"num_predict": 4}).done


def test_errors_are_response_errors(client, daemon):
    with pytest.raises(ollama.ResponseError) as unknown:
        client.show("companion/999")
    assert unknown.value.status_code == 404 and "999" in unknown.value.error
    with pytest.raises(ollama.ResponseError) as many:
        client.generate(model=MODEL, prompt="Hi.", options={"num_predict": "many"})
    assert many.value.status_code == 400 and "must be an integer" in many.value.error
    with pytest.raises(ollama.ResponseError) as images:
        client.generate(model=MODEL, prompt="What is this?", images=[b"\x89PNG\r\n\x1a\n"])
    assert images.value.status_code == 400 and "images" in images.value.error
    with pytest.raises(ollama.ResponseError) as streamed:          # a streamed request's error, before any line
        next(client.chat(model=MODEL, stream=True, messages=[{"role": "user", "content": "x", "images": [b"GIF89a"]}]))
    assert streamed.value.status_code == 400


def second_model(daemon, name: str = "SmolLM2-Second.gguf") -> Path:
    """The bundled model copied into the data dir's models/ under another name (a link would
    resolve to the bundled file: one model, listed once)."""
    folder = Path(daemon.services.settings.data_dir) / "models"
    folder.mkdir(exist_ok=True)
    copy = folder / name
    shutil.copyfile(bundled_model(), copy)
    return copy


def test_an_unknown_model_is_a_404_as_in_ollama(client):
    """Clients (Home Assistant, Open WebUI) offer to pull a model on Ollama's 404."""
    for call in (lambda: client.chat(model="no-such-model:7b", messages=[{"role": "user", "content": "Hi."}]),
                 lambda: client.generate(model="no-such-model:7b", prompt="Hi."),
                 lambda: client.show("no-such-model:7b"),
                 lambda: client.embed(model="no-such-model:7b", input="hello")):
        with pytest.raises(ollama.ResponseError) as unknown:
            call()
        assert unknown.value.status_code == 404 and unknown.value.error == "model 'no-such-model:7b' not found"
    with pytest.raises(ollama.ResponseError) as streamed:
        next(client.chat(model="no-such-model:7b", messages=[{"role": "user", "content": "Hi."}], stream=True))
    assert streamed.value.status_code == 404


def test_model_names_mean_models(client, daemon):
    """The serving model's names (with or without :latest), another listed file (loaded by naming
    it), companion/<id>; the embedder's names on /api/embed."""
    serving = daemon.services.names.serving_tag()
    for name in (serving, serving.removesuffix(":latest"), serving.upper(), bundled_model().name):
        assert client.chat(model=name, messages=[{"role": "user", "content": "Hi."}], options=OPTIONS).done
    copy = second_model(daemon)
    assert "smollm2-second:latest" in [m.model for m in client.list().models]
    assert client.show("smollm2-second").modelinfo["general.architecture"] == "llama"    # described, not loaded
    assert Path(daemon.services.generator.path).resolve() == bundled_model().resolve()
    reply = client.chat(model="smollm2-second:latest", messages=[{"role": "user", "content": "Hi."}], options=OPTIONS)
    assert reply.done and reply.message.content and reply.model == "smollm2-second:latest"
    assert Path(daemon.services.generator.path).resolve() == copy                               # it serves now
    assert [m.model for m in client.ps().models] == ["smollm2-second:latest"]
    assert client.list().models[0].model == "smollm2-second:latest"
    assert serving in [m.model for m in client.list().models]                         # the first one is listed still
    assert client.generate(model=serving, prompt="Hi.", options=OPTIONS).done          # and named, it serves again
    assert Path(daemon.services.generator.path).resolve() == bundled_model().resolve()
    assert client.embed(model="all-minilm", input="hello").embeddings
    assert client.embed(model=serving, input="hello").embeddings
    with pytest.raises(ollama.ResponseError) as other:
        client.embed(model="smollm2-second", input="hello")
    assert other.value.status_code == 400 and "embedder" in other.value.error


FACT = "My sister Ingrid lives in Tromsø and keeps bees."
QUESTION = "Where does my sister live?"


def memories(daemon, companion: int) -> list[dict]:
    return daemon.api("GET", f"/api/memories?companion_id={companion}&limit=100")["items"]


def test_memory_for_a_frontends_own_prompt(client, daemon):
    """Open WebUI and the like send their whole history to /api/chat: with memory/<id> (or the
    X-Companion-Memory header) the companion's memories go into it and the exchange is kept."""
    companion = daemon.services.companions.active_companion_id()
    assert client.chat(model=MODEL, messages=[{"role": "user", "content": FACT}], options=OPTIONS).done
    assert memories(daemon, companion) == []                         # no opt-in: nothing remembered
    told = client.chat(model=f"memory/{companion}", messages=[{"role": "user", "content": FACT}], options=OPTIONS)
    first = memories(daemon, companion)[0]
    assert first["text"] == f"{{{{user}}}}: {FACT}\n{{{{char}}}}: {told.message.content.strip()}"

    body = {"model": f"memory/{companion}/{MODEL}", "messages": [{"role": "user", "content": QUESTION}],
            "options": OPTIONS}
    chunks = list(client.chat(**body, stream=True))
    second = memories(daemon, companion)[0]
    assert second["text"] == f"{{{{user}}}}: {QUESTION}\n{{{{char}}}}: {''.join(c.message.content for c in chunks).strip()}"
    raw = requests.post(daemon.url + "/api/chat", json={**body, "stream": False}, timeout=120)
    assert raw.status_code == 200 and str(first["id"]) in raw.headers["X-Companion-Memories"].split(",")
    assert raw.json()["message"]["content"]

    with ollama.Client(host=daemon.url, timeout=120, headers={"X-Companion-Memory": str(companion)}) as frontend:
        assert frontend.chat(model=MODEL, messages=[{"role": "user", "content": "Hello again."}], options=OPTIONS).done
    assert memories(daemon, companion)[0]["text"].startswith("{{user}}: Hello again.\n{{char}}: ")
    with pytest.raises(ollama.ResponseError) as unknown:
        client.chat(model="memory/999", messages=[{"role": "user", "content": "Hi."}])
    assert unknown.value.status_code == 404 and "999" in unknown.value.error


def test_a_frontend_that_goes_away_keeps_the_partial_exchange(client, daemon):
    """As a turn keeps a partial reply: the exchange is remembered with what was said."""
    companion = daemon.services.companions.active_companion_id()
    daemon.generator.pace = 0.2
    stream = client.chat(model=f"memory/{companion}", stream=True, options={"temperature": 0, "num_predict": 200},
                         messages=[{"role": "user", "content": "Tell me a long story."}])
    said = "".join(next(stream).message.content for _ in range(3))
    stream.close()
    client.close()
    daemon.generator.pace = 0
    for _ in range(100):
        if memories(daemon, companion):
            break
        time.sleep(0.1)
    kept = memories(daemon, companion)[0]["text"]
    assert kept.startswith("{{user}}: Tell me a long story.\n{{char}}: " + said.strip())
    assert len(kept) < 400                                           # not 200 tokens' worth
