"""The light embedder: the bundled BERT run with numpy gives the torch vectors, without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.script import user_lines
from companion.memory.embedder import NumpyEmbedder, bundled_embedder


@pytest.fixture(scope="module")
def light() -> NumpyEmbedder:
    embedder = NumpyEmbedder(bundled_embedder())
    embedder.load()
    assert embedder.state == "ready", embedder.error
    return embedder


def test_the_numpy_vectors_are_the_torch_vectors(light, embedder):
    texts = user_lines(300, seed=5) + ["", "a", "Ünïcödé and emoji 🌊 text", "word " * 400,
                                       "{{user}}: My uncle Rasmus lives in Aarhus.\n{{char}}: Aarhus sounds lovely!"]
    ours, theirs = np.array(light.embed(texts)), np.array(embedder.embed(texts))
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.999, (cosines.argmin(), cosines.min())
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    for text in texts[:20] + texts[-3:]:
        assert light.token_offsets(text) == embedder.token_offsets(text)


def test_with_the_numpy_backend_a_turn_never_imports_torch(tmp_path):
    script = f"""
import sys
from companion.config import load_settings
from companion.services import build_services
settings = load_settings(env={{}}, overrides={{"data_dir": {str(tmp_path / "data")!r},
    "memory": {{"embedder_backend": "numpy"}}, "model": {{"n_ctx": 2048}},
    "generation": {{"temperature": 0.0, "max_tokens": 8, "top_k": 1, "seed": 1}}}})
services = build_services(settings)
services.generator.load(); services.embedder.load()
chat = services.companions.active_chat_id()
reply = services.turns.send(chat, "My cat is called Pixel.")
services.memory.flush()
found = services.memory.recall(services.companions.active_companion_id(), "What is my cat called?", 2, 0.0)
print("REPLY", bool(reply.message["text"]), "RECALLED", any("Pixel" in m.text for m in found))
print("TORCH", "torch" in sys.modules, "SENTENCE_TRANSFORMERS", "sentence_transformers" in sys.modules)
services.close()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REPLY True RECALLED True" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "TORCH False SENTENCE_TRANSFORMERS False" in done.stdout, done.stdout
