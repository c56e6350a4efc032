"""The KoboldCpp-compatible API on the real model."""

from __future__ import annotations

import json


def test_info_endpoints(client):
    assert client.get("/api/v1/model").get_json()["result"].startswith("koboldcpp/")
    assert client.get("/api/v1/info/version").get_json()["result"]
    assert client.get("/api/extra/version").get_json()["result"] == "KoboldCpp"


def test_generate_with_kobold_parameters(client):
    body = {"prompt": "The capital of France is", "max_length": 8, "temperature": 0, "rep_pen": 1.1,
            "top_p": 0.9, "top_k": 40, "min_p": 0.05, "sampler_seed": 1, "stop_sequence": ["\n"],
            "max_context_length": 2048}
    first = client.post("/api/v1/generate", json=body).get_json()["results"][0]["text"]
    assert first and "\n" not in first
    assert client.post("/api/v1/generate", json=body).get_json()["results"][0]["text"] == first


def test_stream_and_abort(client):
    response = client.post("/api/extra/generate/stream", json={"prompt": "Once upon a time", "max_length": 200,
                                                               "temperature": 0}, buffered=False)
    assert response.mimetype == "text/event-stream"
    tokens = []
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        assert text.startswith("event: message\ndata: ")
        tokens.append(json.loads(text.split("data: ", 1)[1])["token"])
        if len(tokens) == 3:
            assert client.post("/api/extra/abort").get_json() == {"success": "true"}
    assert 3 <= len(tokens) <= 5
    assert client.post("/api/extra/abort").get_json() == {"success": "false"}


def test_bad_kobold_requests(client):
    for body in ({}, {"prompt": ""}, {"prompt": "x", "max_length": -1}, {"prompt": "x", "rep_pen": "high"},
                 {"prompt": "x", "stop_sequence": [3]}, {"prompt": "x", "max_context_length": 0}):
        response = client.post("/api/v1/generate", json=body)
        assert response.status_code == 400 and response.get_json()["error"]["message"], body


def test_a_failure_mid_stream_is_reported(client, services):
    class Failing:
        """The real model's attributes, a generation that breaks after one piece."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def generate(self, request, stop_event=None):
            yield "Once"
            raise RuntimeError("the model fell over")

    services.turns.generator = Failing(services.turns.generator)
    response = client.post("/api/extra/generate/stream", json={"prompt": "Tell me", "max_length": 8})
    events = [block for block in response.get_data(as_text=True).split("\n\n") if block]
    assert events[0].startswith("event: message") and events[-1].startswith("event: error")
    assert "the model fell over" in json.loads(events[-1].split("data: ", 1)[1])["message"]


def test_the_clients_context_size_is_honoured(client):
    body = {"prompt": "word " * 60, "max_length": 8, "max_context_length": 40}
    refused = client.post("/api/v1/generate", json=body)
    assert refused.status_code == 400 and "context size (40 tokens)" in refused.get_json()["error"]["message"]
    assert client.post("/api/v1/generate", json={**body, "max_context_length": 2048}).status_code == 200
