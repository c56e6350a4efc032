"""The generation backends by name: ``[model] backend`` picks one, at start-up and when the
model settings change at run time (PUT /api/config).

A new backend (a llama.cpp server, an Ollama server) is one module with one class that
follows generation.Generator and has ``from_settings(model, data_dir)``, added here.
"""

from __future__ import annotations

from pathlib import Path

from companion.config import ModelSettings
from companion.model.generation import Backend, Generator
from companion.model.local import LlamaGenerator
from companion.model.remote import RemoteGenerator

BACKENDS: dict[str, Backend] = {
    "local": LlamaGenerator,      # a GGUF file run in this process by llama-cpp-python
    "openai": RemoteGenerator,    # any OpenAI-compatible server at [model] base_url
}


def make_generator(model: ModelSettings, data_dir: Path) -> Generator:
    """The (not yet loaded) generator for model settings; start() or load() loads it."""
    return BACKENDS[model.backend].from_settings(model, data_dir)


def uses_model_file(model: ModelSettings) -> bool:
    """Whether the backend runs a model file of its own ([model] path applies)."""
    return getattr(BACKENDS[model.backend], "uses_model_file", False)
