"""Fill in the middle: /v1/completions with a suffix, on a model that has the tokens for it."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from conftest import test_settings

from companion.app import create_app
from companion.model.gguf import _read, _string, _value
from companion.model.local import LlamaGenerator, bundled_model
from companion.services import build_services

UINT32 = 4


def with_fim_tokens(source: Path, target: Path, ids: tuple[int, int, int]) -> None:
    """A copy of a GGUF whose header also declares fill-in-the-middle token ids (prefix, suffix,
    middle): the header's key/value pairs are copied and three are added, then the tensor infos,
    the padding to the file's alignment and the tensor data as they were."""
    with open(source, "rb") as fh:
        assert fh.read(4) == b"GGUF"
        version, tensors, count = _read(fh, "<I"), _read(fh, "<Q"), _read(fh, "<Q")
        start = fh.tell()
        alignment = 32
        for _ in range(count):
            key = _string(fh)
            kind = _read(fh, "<I")
            value = _value(fh, kind, key == "general.alignment")
            if key == "general.alignment":
                alignment = value
        end_of_pairs = fh.tell()
        for _ in range(tensors):
            _string(fh, keep=False)
            dims = _read(fh, "<I")
            fh.seek(8 * dims + 4 + 8, 1)
        end_of_infos = fh.tell()
        data_start = -(-end_of_infos // alignment) * alignment
        fh.seek(start)
        pairs = fh.read(end_of_pairs - start)
        infos = fh.read(end_of_infos - end_of_pairs)
        fh.seek(data_start)
        with open(target, "wb") as out:
            out.write(b"GGUF" + struct.pack("<IQQ", version, tensors, count + 3) + pairs)
            for name, token in zip(("fim_pre", "fim_suf", "fim_mid"), ids):
                key = f"tokenizer.ggml.{name}_token_id".encode()
                out.write(struct.pack("<Q", len(key)) + key + struct.pack("<II", UINT32, token))
            out.write(infos)
            out.write(b"\0" * (-out.tell() % alignment))
            shutil.copyfileobj(fh, out)


@pytest.fixture(scope="module")
def fim_model(tmp_path_factory) -> Path:
    """SmolLM2 with three of its special tokens declared as fill-in-the-middle tokens
    (<repo_name>, <file_sep>, <filename>): the model was not trained for it, the prompt is what is tested."""
    target = tmp_path_factory.mktemp("fim") / "smollm2-fim.gguf"
    with_fim_tokens(bundled_model(), target, (3, 5, 6))
    return target


def test_a_suffix_is_filled_in_between_the_models_own_tokens(tmp_path, fim_model, embedder, monkeypatch):
    settings = test_settings(tmp_path / "data", model={"path": str(fim_model)})
    services = build_services(settings, embedder=embedder)
    services.generator.load()
    assert services.generator.state == "ready", services.generator.error
    try:
        client = create_app(settings, services).test_client()
        seen = []
        real_complete = LlamaGenerator._complete

        def recording(self, prompt, stops, params, stop_event=None):
            seen.append(prompt)
            return real_complete(self, prompt, stops, params, stop_event)

        monkeypatch.setattr(LlamaGenerator, "_complete", recording)
        response = client.post("/v1/completions", json={"prompt": "def add(a, b):\n    return ",
                                                        "suffix": "\n\nprint(add(1, 2))\n",
                                                        "max_tokens": 8, "temperature": 0})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert seen == ["<repo_name>def add(a, b):\n    return <file_sep>\n\nprint(add(1, 2))\n<filename>"]
        assert response.get_json()["usage"]["prompt_tokens"] > 3
        listed = {m["name"]: m for m in client.get("/api/models").get_json()["items"]}
        assert listed["smollm2-fim.gguf"]["fill_in_middle"] is True and listed["smollm2-fim.gguf"]["active"]
        assert listed["SmolLM2-135M-Instruct.Q4_1.gguf"]["fill_in_middle"] is False
    finally:
        services.close()


def test_a_suffix_for_a_model_without_the_tokens_is_refused(client):
    response = client.post("/v1/completions", json={"prompt": "Once", "suffix": "the end.", "max_tokens": 4})
    assert response.status_code == 400
    assert "no fill-in-the-middle tokens" in response.get_json()["error"]["message"]
    assert client.post("/v1/completions", json={"prompt": "Once", "max_tokens": 2}).status_code == 200   # not held
