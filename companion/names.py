"""What the model name of a request means, for the Ollama (/api) and OpenAI (/v1) dialects alike.

A name is one of:

- omitted, or a name of the model serving now: that model;
- a name of another listed model file (its file name or stem, any case; Ollama's
  ``<stem>:latest``): that model, loaded first (as PUT /api/config switches models);
- ``companion`` (the active companion), ``companion:<id>`` (OpenAI) or ``companion/<id>`` (Ollama,
  with any tag): a turn in that companion's own chat, with its persona, memory and history;
- ``memory/<id>`` or ``memory/<id>/<model>``: the client's own messages, as a plain model gets
  them, with that companion's long-term memory put in and the exchange remembered (the
  ``X-Companion-Memory: <id>`` header asks the same with any model name).

Anything else is ModelNotFound (a 404 in each dialect's shape: clients offer to pull on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from companion.errors import BadRequest, ModelNotFound

if TYPE_CHECKING:     # light to import: security.py reads the header names
    from companion.characters.companions import CompanionService
    from companion.memory.embedder import Embedder
    from companion.model.service import ModelService

COMPANION = "companion"
MEMORY = "memory/"
LATEST = ":latest"
MEMORY_HEADER = "X-Companion-Memory"      # opts a plain request into a companion's memory
RECALLED_HEADER = "X-Companion-Memories"  # the ids of the memories put in, on the response
BUNDLED_EMBEDDER = ("all-minilm", "all-minilm-l6-v2")   # the bundled embedder: Ollama's name for it, its own


def ollama_tag(path: Path | str) -> str:
    """A model file as Ollama names it: its stem, lower case, tag latest."""
    return f"{Path(path).stem.lower() or 'model'}{LATEST}"


def names_file(name: str, path: Path) -> bool:
    """Whether a name names a model file: its file name or stem (any case), with or without :latest."""
    key = name.strip().lower().removesuffix(LATEST)
    return key in (path.name.lower(), path.stem.lower())


@dataclass(frozen=True)
class Named:
    """What a model name asks for."""
    name: str                          # as the request gave it ("" when omitted)
    path: Path | None = None           # a model file that does not serve now: loaded first (use())
    companion_id: int | None = None    # the companion's own chat
    memory_id: int | None = None       # the client's messages with this companion's long-term memory


class ModelNames:
    """The names /api/tags and /v1/models list, and what a request's model name means."""

    def __init__(self, models: "ModelService", companions: "CompanionService", embedder: "Embedder") -> None:
        self.models = models
        self.companions = companions
        self.embedder = embedder

    # what is listed ----------------------------------------------------------------------------

    def serving_tag(self) -> str:
        """The serving model as Ollama names it (a remote model: by its name on that server)."""
        generator = self.models.turns.generator
        if self.models.serving_file() is None and generator.name:
            return generator.name.lower() if ":" in generator.name else f"{generator.name.lower()}{LATEST}"
        return ollama_tag(generator.path)

    def serving_id(self) -> str:
        """The serving model as /v1/models names it: its file name (a remote model: its name there)."""
        return self.models.turns.generator.name or "model"

    def other_files(self) -> list[Path]:
        """The listed model files besides the one serving (none with a backend that runs no file)."""
        if not self.models.runs_files():
            return []
        serving = self.models.serving_file()
        return [path for path in self.models.files() if path != serving]

    def embedder_names(self) -> list[str]:
        """The embedder's names, lower case, the one to show first: for the bundled embedder
        Ollama's name of that model (all-minilm) and its own; for any other its model folder's
        name (the folder above one named 'model'); and embedder.name, as /api/status shows it."""
        from companion.memory.embedder import bundled_embedder

        path = Path(self.embedder.path or "embedder")
        names = list(BUNDLED_EMBEDDER) if self.embedder.path and path == bundled_embedder() else []
        parts = [p for p in path.parts if p.lower() not in ("model", "models")]
        names += [(parts[-1] if parts else "embedder").lower(), self.embedder.name.lower()]
        return list(dict.fromkeys(n for n in names if n))

    def embedder_tag(self) -> str:
        """The embedder as Ollama would name it."""
        return f"{self.embedder_names()[0]}{LATEST}"

    # what a name means -------------------------------------------------------------------------

    def resolve(self, name: object, memory: str | None = None) -> Named:
        """What a request's model name (and X-Companion-Memory header, when given) asks for;
        ModelNotFound for a name that names nothing here, NotFound for an unknown companion."""
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise BadRequest("'model' must be a string")
        name = name.strip()
        header = self._memory_header(memory)
        if name.lower().startswith(MEMORY):
            named = self._memory(name)
            if header is not None and header != named.memory_id:
                raise BadRequest(f"{MEMORY_HEADER}: {header} and model {name!r} name two companions")
            return named
        companion_id = self._companion(name)
        if companion_id is not None:
            if header is not None:
                raise BadRequest(f"{MEMORY_HEADER} goes with a model, not with a companion's own chat ({name!r})")
            return Named(name, companion_id=companion_id)
        path = self._model(name)
        if header is not None:
            self.companions.get(header)
        return Named(name, path=path, memory_id=header)

    def use(self, named: Named) -> None:
        """Make the model a name asks for the one serving (loading it; see ModelService.use)."""
        if named.path is not None:
            self.models.use(named.path)

    def check_embedder(self, name: object) -> None:
        """/api/embed's model: omitted, the embedder's own names or the serving model's; a 400
        for another listed model (embeddings come from the embedder), ModelNotFound otherwise."""
        if name is None or name == "":
            return
        if not isinstance(name, str):
            raise BadRequest("'model' must be a string")
        if name.strip().lower().removesuffix(LATEST) in self.embedder_names():
            return
        if self._model(name) is None:     # the serving model's name
            return
        raise BadRequest(f"embeddings come from the embedder here: use model {self.embedder_tag()!r}")

    def _memory_header(self, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            companion_id = int(value.strip())
        except ValueError:
            raise BadRequest(f"{MEMORY_HEADER} must be a companion id") from None
        if not 1 <= companion_id < 2**63:        # past SQLite's row ids: no companion, not an overflow
            raise BadRequest(f"{MEMORY_HEADER} must be a companion id")
        return companion_id

    def _memory(self, name: str) -> Named:
        """memory/<id>[:tag] or memory/<id>/<model>."""
        rest = name[len(MEMORY):]
        who, _, model = rest.partition("/")
        companion_id = _row_id(who.split(":", 1)[0], name)
        self.companions.get(companion_id)
        if model and (model.lower().startswith(MEMORY) or self._companion(model) is not None):
            raise BadRequest(f"model {name!r}: after memory/<id>/ comes a model, not a companion")
        return Named(name, path=self._model(model, name) if model else None, memory_id=companion_id)

    def _companion(self, name: str) -> int | None:
        """The companion a name asks for: companion (the active one), companion:<id>, companion/<id>[:tag]."""
        lower = name.lower()
        if lower in (COMPANION, COMPANION + LATEST):
            return self.companions.active_companion_id()
        if lower.startswith(COMPANION + ":"):
            who = name[len(COMPANION) + 1:]
        elif lower.startswith(COMPANION + "/"):
            who = name[len(COMPANION) + 1:].split(":", 1)[0].split("-", 1)[0]
        else:
            return None
        companion_id = _row_id(who, name)
        self.companions.get(companion_id)
        return companion_id

    def _model(self, name: str, asked: str | None = None) -> Path | None:
        """None for the serving model (omitted, or one of its names); the path of another listed
        model file; ModelNotFound for anything else."""
        if not name:
            return None
        key = name.lower()
        serving = self.models.serving_file()
        if key in (self.serving_id().lower(), self.serving_tag(), self.serving_tag().removesuffix(LATEST)):
            return None
        if serving is not None and names_file(name, serving):
            return None
        for path in self.other_files():
            if names_file(name, path):
                return path
        raise ModelNotFound(asked or name)


def _row_id(text: str, name: str) -> int:
    """The companion id in a model name; ModelNotFound when it is none, or past SQLite's row ids."""
    try:
        companion_id = int(text)
    except ValueError:
        raise ModelNotFound(name) from None
    if not 0 <= companion_id < 2**63:
        raise ModelNotFound(name)
    return companion_id
