"""The Ollama API on the real model and embedder: tags, show, generate and chat (streamed as
NDJSON by default, or whole), a companion by name, embeddings, errors in Ollama's shape."""

from __future__ import annotations

import json
from datetime import datetime


def lines_of(response) -> list[dict]:
    assert response.mimetype == "application/x-ndjson", response.get_data(as_text=True)
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines() if line]


def test_version_tags_show_ps(client, services):
    assert client.get("/api/version").get_json()["version"]
    names = [m["name"] for m in client.get("/api/tags").get_json()["models"]]
    companion = services.companions.active_companion_id()
    assert names[0].startswith("smollm2-135m-instruct") and f"companion/{companion}:latest" in names
    shown = client.post("/api/show", json={"model": names[0]}).get_json()
    assert "<|im_start|>" in shown["template"] and shown["model_info"]["general.architecture"] == "llama"
    running = client.get("/api/ps").get_json()["models"][0]
    assert running["name"] == names[0]
    expires = datetime.fromisoformat(running["expires_at"].replace("Z", "+00:00"))   # a time: clients parse it
    assert expires.year > 2200                                       # Ollama's "never": the model stays loaded


def test_generate_streams_ndjson_by_default_and_answers_whole_when_asked(client):
    body = {"prompt": "Name a colour.", "options": {"temperature": 0, "num_predict": 8, "seed": 1}}
    lines = lines_of(client.post("/api/generate", json=body))
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"] is True
    final = lines[-1]
    assert final["done_reason"] in ("stop", "length") and final["eval_count"] <= 8 and final["prompt_eval_count"] > 3
    assert final["total_duration"] >= final["eval_duration"] > 0
    whole = client.post("/api/generate", json={**body, "stream": False}).get_json()
    assert whole["done"] is True and whole["response"] == "".join(line["response"] for line in lines[:-1])
    raw = client.post("/api/generate", json={**body, "raw": True, "prompt": "Once upon a time", "stream": False})
    assert raw.status_code == 200 and raw.get_json()["response"]


def test_chat_with_the_model_and_with_a_companion(client, services):
    body = {"messages": [{"role": "user", "content": "Say hello."}], "stream": False,
            "options": {"temperature": 0, "num_predict": 8}}
    reply = client.post("/api/chat", json=body).get_json()
    assert reply["message"]["role"] == "assistant" and reply["message"]["content"] and reply["done"] is True
    before = services.store.count("messages")
    companion = services.companions.active_companion_id()
    lines = lines_of(client.post("/api/chat", json={**body, "model": f"companion/{companion}", "stream": True,
                                                    "messages": [{"role": "user", "content": "My cat is Pixel."}]}))
    assert lines[-1]["done"] is True and "".join(line["message"]["content"] for line in lines[:-1])
    assert services.store.count("messages") == before + 2          # the companion's chat has the exchange


def test_embeddings(client, services):
    both = client.post("/api/embed", json={"model": "all-minilm", "input": ["hello", "world"]}).get_json()
    assert len(both["embeddings"]) == 2 and len(both["embeddings"][0]) == 384 and both["prompt_eval_count"] == 2
    old = client.post("/api/embeddings", json={"model": "all-minilm", "prompt": "hello"}).get_json()
    assert old["embedding"] == both["embeddings"][0]


def test_errors_come_in_ollamas_shape(client):
    response = client.post("/api/generate", json={"prompt": "hi", "context": [1, 2, 3]})
    assert response.status_code == 400 and "context" in response.get_json()["error"]
    assert client.post("/api/chat", json={"messages": []}).get_json()["error"]
    assert client.post("/api/chat", json={"model": "companion/999", "messages": [{"role": "user", "content": "x"}]}
                       ).status_code == 404
    assert client.post("/api/generate", json={"prompt": "hi", "images": ["aGk="]}).status_code == 400


def test_a_client_that_goes_away_stops_the_generation(client):
    body = {"messages": [{"role": "user", "content": "Tell me a long story."}],
            "options": {"temperature": 0, "num_predict": 200}}
    response = client.post("/api/chat", json=body, buffered=False)
    first = next(iter(response.response))
    assert json.loads(first)["done"] is False
    response.close()                                   # as a disconnected client's connection
    again = client.post("/api/chat", json={**body, "stream": False, "options": {"num_predict": 4}})
    assert again.status_code == 200                    # the model was let go (not 429)


def test_model_names_and_memory_errors_in_ollamas_shape(client, services):
    hi = [{"role": "user", "content": "Hi."}]
    unknown = client.post("/api/chat", json={"model": "no-such-model:7b", "messages": hi})
    assert unknown.status_code == 404 and unknown.get_json() == {"error": "model 'no-such-model:7b' not found"}
    for path, body in (("/api/show", {"model": "nope"}), ("/api/embed", {"model": "nope", "input": "x"}),
                       ("/api/embeddings", {"model": "nope", "prompt": "x"}), ("/api/generate", {"model": "nope"}),
                       ("/api/chat", {"model": "companion/x", "messages": hi})):
        response = client.post(path, json=body)
        assert response.status_code == 404 and "not found" in response.get_json()["error"], path
    companion = services.companions.active_companion_id()
    refused = [client.post("/api/chat", json={"model": f"companion/{companion}", "messages": hi},
                           headers={"X-Companion-Memory": str(companion)}),
               client.post("/api/chat", json={"messages": hi}, headers={"X-Companion-Memory": "Ada"}),
               client.post("/api/chat", json={"model": f"memory/{companion}", "messages": hi},
                           headers={"X-Companion-Memory": "999"}),
               client.post("/api/chat", json={"model": f"memory/{companion}/companion/{companion}", "messages": hi}),
               client.post("/api/generate", json={"model": f"memory/{companion}", "prompt": "Hi."})]
    assert [r.status_code for r in refused] == [400] * 5 and all(isinstance(r.get_json()["error"], str) for r in refused)
    assert client.post("/api/chat", json={"model": f"memory/{companion}/nope", "messages": hi}).get_json() == {
        "error": f"model 'memory/{companion}/nope' not found"}
    assert client.post("/api/chat", json={"messages": hi}, headers={"X-Companion-Memory": "999"}).status_code == 404
    assert services.store.count("memories") == 0
