"""llama.cpp's server API on the real model: health, props, completion (whole and streamed), tokens."""

from __future__ import annotations

import json


def test_health_and_props(client, services):
    assert client.get("/health").get_json() == {"status": "ok"}
    props = client.get("/props").get_json()
    assert props["default_generation_settings"]["n_ctx"] == services.generator.n_ctx
    assert props["model_path"].endswith(".gguf") and props["total_slots"] == 1


def test_completion_whole_and_streamed_are_the_same_text(client):
    body = {"prompt": "The capital of France is", "n_predict": 8, "temperature": 0, "seed": 1}
    whole = client.post("/completion", json=body)
    assert whole.status_code == 200, whole.get_data(as_text=True)
    result = whole.get_json()
    assert result["stop"] is True and result["content"] and result["tokens_predicted"] <= 8
    assert result["tokens_evaluated"] > 3 and result["stop_type"] in ("limit", "eos")
    streamed = client.post("/completion", json={**body, "stream": True})
    assert streamed.mimetype == "text/event-stream"
    events = [json.loads(block[len("data: "):]) for block in streamed.get_data(as_text=True).split("\n\n") if block]
    assert all(not e["stop"] for e in events[:-1]) and events[-1]["stop"] is True
    assert "".join(e["content"] for e in events[:-1]) == result["content"]


def test_stop_words_and_n_predict(client):
    result = client.post("/completion", json={"prompt": "Count: one, two, three,", "n_predict": 24,
                                              "temperature": 0, "stop": ["six"]}).get_json()
    assert "six" not in result["content"]
    assert client.post("/completion", json={"prompt": "Hi", "n_predict": -1, "temperature": 0}).status_code == 200


def test_tokenize_and_detokenize_round_trip(client):
    tokens = client.post("/tokenize", json={"content": "Hello, world!"}).get_json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert client.post("/detokenize", json={"tokens": tokens}).get_json()["content"] == "Hello, world!"
    with_bos = client.post("/tokenize", json={"content": "Hello", "add_special": True}).get_json()["tokens"]
    assert len(with_bos) >= len(client.post("/tokenize", json={"content": "Hello"}).get_json()["tokens"])
    pieces = client.post("/tokenize", json={"content": "Hello world", "with_pieces": True}).get_json()["tokens"]
    assert "".join(p["piece"] for p in pieces) == "Hello world"


def test_errors_come_in_llama_cpps_shape(client):
    response = client.post("/completion", json={"prompt": ""})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == 400 and error["type"] == "invalid_request_error" and "prompt" in error["message"]
    bad = client.post("/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and "vocabulary" in bad.get_json()["error"]["message"]
