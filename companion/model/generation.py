"""What every generation backend takes and does: the request, its parameters, the protocol.

A backend is one class (see backends.py for where it is registered): it is given a
GenerationRequest (chat messages, or a raw prompt for the completion endpoints, and the
sampling parameters) and streams the reply's text. Rendering messages into the model's prompt
format is the backend's own business.
"""

from __future__ import annotations

import threading
from collections.abc import Generator as Stream
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from companion.config import GenerationSettings, ModelSettings


@dataclass
class GenerationParams(GenerationSettings):
    """Sampling parameters of one generation: the generation settings (their defaults and bounds
    declared once, in config.py) and the penalties only the OpenAI dialect sets."""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


@dataclass
class GenerationRequest:
    """One generation: chat messages ({"role", "content"}) or a raw prompt, and the parameters.

    ``char`` and ``user`` name the two sides for backends that write a transcript; a chat
    request also stops where the model starts to write the user's next line."""
    params: GenerationParams = field(default_factory=GenerationParams)
    messages: list[dict] | None = None
    prompt: str | None = None
    char: str = "Assistant"
    user: str = "User"
    suffix: str | None = None    # with a prompt: the text after the gap to fill (fill-in-the-middle)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a generation request has either messages or a prompt")
        if self.suffix is not None and self.prompt is None:
            raise ValueError("a suffix goes with a prompt")

    def stops(self, template_stops: list[str] | None = None) -> list[str]:
        """The stop strings: the user's next line (chat requests), the template's, the request's own."""
        own = [f"\n{self.user}:"] if self.messages is not None else []
        return own + [s for s in template_stops or [] if s] + list(self.params.stop)


class Generator(Protocol):
    """What the services need from a generation backend."""
    path: str            # the model file, or the server's address
    name: str
    n_ctx: int
    n_ctx_reason: str    # why that context size ("set by [model] n_ctx", or how it was chosen)
    state: str           # "loading" | "ready" | "failed"
    error: str | None
    template: str        # the prompt format in use ("gguf", "chatml", "transcript", "remote", ...)
    template_note: str   # why that format ("the model has no chat template ...")

    def start(self) -> None: ...
    def load(self) -> None: ...          # in this thread (start: in a background one); `companion doctor`
    def wait_ready(self, timeout: float | None = None) -> bool: ...
    def count_tokens(self, text: str) -> int: ...
    def prompt_tokens(self, request: GenerationRequest) -> int: ...
    def generate(self, request: GenerationRequest,
                 stop_event: threading.Event | None = None) -> Stream[str, None, None]: ...


class Backend(Protocol):
    """A generator class as backends.py registers it: it makes its generator from [model]."""

    def from_settings(self, model: ModelSettings, data_dir: Path) -> Generator: ...


def render_transcript(messages: list[dict], char: str, user: str) -> str:
    """A plain 'Name: text' transcript for models without a chat template."""
    lines = []
    for m in messages:
        if m["role"] == "system":
            lines.append(m["content"] + "\n")
        elif m.get("name"):          # already "Name: text"
            lines.append(m["content"])
        else:
            lines.append(f"{char if m['role'] == 'assistant' else user}: {m['content']}")
    lines.append(f"{char}:")
    return "\n".join(lines)


class Serving(Protocol):
    """What serves the turns (chat/turns.py's TurnService): the generator in use, and its swap."""
    generator: Generator

    def replace_generator(self, generator: Generator) -> None:
        """Serve with another (loaded) generator from the next generation on."""
