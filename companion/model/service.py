"""The model service: which GGUF files can be used, and changing model settings at run time.

A new model (or new settings) loads in the background while the current model keeps
serving; it takes over between two turns. Changes are kept in the database, so they survive
a restart, over the config file's values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import Generator as Steps

from companion.config import CHAT_TEMPLATES, GenerationSettings, InitiativeSettings, ModelSettings, Settings, initiative_problem
from companion.errors import BadRequest, ModelUnavailable
from companion.model.backends import make_generator, uses_model_file
from companion.model.generation import Generator, Serving
from companion.model.gguf import GGUFError, read_metadata
from companion.model.local import CHECKOUT_MODELS, bundled_model
from companion.model.pull import Source, delete_model, download, parse_reference, resolve
from companion.store import Store

log = logging.getLogger(__name__)

STATE_KEY = "config_overrides"
FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id")
MODEL_KEYS = ("path", "n_ctx", "n_threads", "n_batch", "n_gpu_layers", "flash_attn", "use_mmap",
              "chat_template")


def model_files(data_dir: Path) -> list[Path]:
    """The bundled model and every *.gguf in the data dir's and the checkout's models/."""
    found: list[Path] = []
    bundled = bundled_model()
    if bundled:
        found.append(bundled)
    for folder in (data_dir / "models", CHECKOUT_MODELS):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.gguf") if p.is_file())
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    return list(unique)


def describe_model(path: Path) -> dict:
    """A model file as /api/models lists it: name, size, context length, chat template."""
    entry = {"path": str(path), "name": path.name, "size": path.stat().st_size}
    try:
        meta = read_metadata(path, {"general.name", "general.architecture", "tokenizer.chat_template", *FIM_KEYS})
        architecture = meta.get("general.architecture")
        context = read_metadata(path, {f"{architecture}.context_length"}) if architecture else {}
        entry.update({
            "model_name": meta.get("general.name"),
            "architecture": architecture,
            "context_length": context.get(f"{architecture}.context_length"),
            "chat_template": meta.get("tokenizer.chat_template"),
            "fill_in_middle": all(key in meta for key in FIM_KEYS),
        })
    except (GGUFError, OSError) as exc:
        entry["error"] = str(exc)
    return entry


class ModelService:
    """Lists models and applies model and generation settings at run time."""

    def __init__(self, settings: Settings, store: Store, turns: Serving) -> None:
        self.settings = settings
        self.store = store
        self.turns = turns
        self.pending: Generator | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def runs_files(self) -> bool:
        """Whether the backend in use runs model files of its own ([model] path applies)."""
        return uses_model_file(self.settings.model)

    def serving_file(self) -> Path | None:
        """The model file serving now (None with a backend that runs no file of its own)."""
        if self.runs_files() and self.turns.generator.path:
            return Path(self.turns.generator.path).resolve()
        return None

    def files(self) -> list[Path]:
        """The model files that can be used; the one serving is always among them, first when it
        lies outside the folders searched (given with --model or [model] path)."""
        files = model_files(Path(self.settings.data_dir))
        current = self.serving_file()
        if current is not None and current not in files and current.is_file():
            files.insert(0, current)
        return files

    def models(self) -> list[dict]:
        """The model files that can be used, described (see files())."""
        current = self.serving_file()
        items = [describe_model(p) for p in self.files()]
        generator = self.turns.generator
        for item in items:
            item["active"] = Path(item["path"]) == current
            if item["active"] and generator.state == "ready" and hasattr(generator, "fim_tokens"):
                item["fill_in_middle"] = generator.fim_tokens() is not None   # llama.cpp also finds them by name
        return items

    def describe_serving(self) -> dict:
        """The serving model's file as /api/models describes it ({} for a remote model)."""
        path = Path(self.turns.generator.path) if self.turns.generator.path else None
        return describe_model(path) if path and uses_model_file(self.settings.model) and path.is_file() else {}

    def describe(self, path: Path | None) -> dict:
        """A model file's facts without loading it; without a file, the serving model's."""
        return describe_model(path) if path else self.describe_serving()

    def config(self) -> dict:
        generator = self.turns.generator
        model = dataclasses.asdict(self.settings.model)
        model.update({"path": generator.path, "state": generator.state, "error": generator.error,
                      "template": generator.template, "template_note": generator.template_note,
                      "n_ctx_in_use": generator.n_ctx, "n_ctx_reason": generator.n_ctx_reason})
        pending = None
        if self.pending is not None:
            pending = {"path": self.pending.path, "state": self.pending.state, "error": self.pending.error}
        return {"model": model, "generation": dataclasses.asdict(self.settings.generation),
                "initiative": dataclasses.asdict(self.settings.initiative),
                "pending_model": pending, "last_error": self.last_error}

    def update(self, model: dict, generation: dict, initiative: dict | None = None) -> dict:
        """Apply changes: generation and initiative at once, model settings by loading a new model
        in the background. Each is kept once it applies: model settings when the new model is ready."""
        new_model = self._checked_model(model)
        if generation:
            self.settings.generation = dataclasses.replace(self.settings.generation, **generation)
            self._save({}, generation)
        if initiative:
            self.settings.initiative = dataclasses.replace(self.settings.initiative, **initiative)
            self._save({}, {}, initiative)
        if new_model is not None:
            self._load(new_model, model)
        return self.config()

    def _checked_model(self, changes: dict) -> ModelSettings | None:
        unknown = set(changes) - set(MODEL_KEYS)
        if unknown:
            raise BadRequest(f"unknown model setting(s): {', '.join(sorted(unknown))}")
        if not changes:
            return None
        if "path" in changes and not uses_model_file(self.settings.model):
            raise BadRequest(f"model.path is for the local backend; this daemon generates with the "
                             f"'{self.settings.model.backend}' backend at {self.settings.model.base_url}")
        if "path" in changes:
            path = Path(str(changes["path"])).expanduser()
            if not path.is_file():
                raise BadRequest(f"no model file at {path}")
            try:
                read_metadata(path, {"general.architecture"})
            except (GGUFError, OSError) as exc:
                raise BadRequest(str(exc)) from None
            changes = {**changes, "path": str(path)}
        if "chat_template" in changes and changes["chat_template"] not in CHAT_TEMPLATES:
            raise BadRequest(f"chat_template must be one of {', '.join(CHAT_TEMPLATES)}")
        if "n_ctx" in changes and 0 < changes["n_ctx"] < 256:
            raise BadRequest("n_ctx must be 0 (chosen for the model) or at least 256")
        if "n_ctx" in changes and changes["n_ctx"] and changes["n_ctx"] <= self.settings.generation.max_tokens:
            raise BadRequest("n_ctx must be above generation.max_tokens")
        current = self.settings.model
        if uses_model_file(current):   # the file serving now (found in models/ when [model] path is empty)
            current = dataclasses.replace(current, path=self.turns.generator.path)
        return dataclasses.replace(current, **changes)

    def use(self, path: Path) -> None:
        """Serve with a model file, as PUT /api/config switches to one: at once when it serves
        already, else after it loads (a load of it under way is waited for, not started again).
        The caller waits up to [model] load_timeout: a 503 after that, while the load goes on;
        a file that fails to load is a 503 with the reason (the old model stays)."""
        target = path.resolve()
        with self._lock:
            if self.serving_file() == target:
                return
            pending = self.pending if self.pending is not None and Path(self.pending.path).resolve() == target else None
        if pending is None:
            new = self._checked_model({"path": str(target)})
            assert new is not None
            pending = self._load(new, {"path": str(target)})
        deadline = time.monotonic() + self.settings.model.load_timeout
        if not pending.wait_ready(max(0.0, deadline - time.monotonic())) and pending.state == "loading":
            raise ModelUnavailable(f"{target.name} is still loading", retry_after=5)
        if pending.state != "ready":
            raise ModelUnavailable(f"{target.name} failed to load: {pending.error}", retry_after=60)
        while True:      # it takes over once the generation running now ends, and is no longer pending then
            with self._lock:
                waiting = self.pending is pending
            if self.turns.generator is pending and not waiting:
                return
            if not waiting:
                raise ModelUnavailable(f"another model was asked for while {target.name} loaded", retry_after=5)
            if time.monotonic() > deadline:
                raise ModelUnavailable(f"{target.name} is loaded and waits for the running generation to end",
                                       retry_after=5)
            time.sleep(0.02)

    def _load(self, new: ModelSettings, changes: dict) -> Generator:
        with self._lock:
            generator = make_generator(new, Path(self.settings.data_dir))
            self.pending = generator
            self.last_error = None
        threading.Thread(target=self._swap_when_loaded, args=(generator, new, changes), name="model-swap",
                         daemon=True).start()
        return generator

    def _swap_when_loaded(self, generator: Generator, new: ModelSettings, changes: dict) -> None:
        generator.start()
        generator.wait_ready()
        with self._lock:
            if self.pending is not generator:   # a newer change replaced this one
                return
            if generator.state != "ready":
                self.last_error = f"the new model failed to load, the old one stays: {generator.error}"
                self.pending = None
                log.error(self.last_error)
                return
        self.turns.replace_generator(generator)
        if uses_model_file(new):
            new = dataclasses.replace(new, path=generator.path)
        self.settings.model = new
        self._save(changes, {})
        with self._lock:
            if self.pending is generator:       # pending until it serves, its settings shown and kept
                self.pending = None
        log.info("now serving %s", generator.path)

    # pulling and deleting model files ---------------------------------------------------------

    def pull_source(self, reference: str) -> Source:
        """The file a model reference names (asks the hub; nothing is downloaded yet)."""
        return resolve(parse_reference(reference), self.settings.model.hf_endpoint)

    def pull(self, source: Source) -> Steps[dict, None, Path]:
        """Download a resolved file into <data_dir>/models, yielding Ollama's progress objects."""
        return download(source, Path(self.settings.data_dir) / "models")

    def delete(self, name: str) -> Path:
        """Delete a model file from <data_dir>/models; not the bundled one, the one serving or one loading."""
        loading = [self.pending.path] if self.pending is not None and self.pending.path else []
        return delete_model(Path(self.settings.data_dir) / "models", name, self.turns.generator.path, bundled_model(),
                            loading=loading)

    # kept in the database -----------------------------------------------------------------

    def _save(self, model: dict, generation: dict, initiative: dict | None = None) -> None:
        saved = self.saved()
        saved.setdefault("model", {}).update(model)
        saved.setdefault("generation", {}).update(generation)
        saved.setdefault("initiative", {}).update(initiative or {})
        self.store.set_state(STATE_KEY, json.dumps(saved))

    def saved(self) -> dict:
        return json.loads(self.store.get_state(STATE_KEY) or "{}")


def apply_saved_config(settings: Settings, store: Store) -> None:
    """Put the changes made through PUT /api/config over the settings (at start-up)."""
    saved = json.loads(store.get_state(STATE_KEY) or "{}")
    model = {k: v for k, v in saved.get("model", {}).items() if k in MODEL_KEYS}
    if settings.model.path or not Path(model.get("path") or ".").is_file():
        model.pop("path", None)   # a path given in the config or on the command line wins
    generation = {k: v for k, v in saved.get("generation", {}).items()
                  if k in {f.name for f in dataclasses.fields(GenerationSettings)}}
    settings.model = dataclasses.replace(settings.model, **model)
    settings.generation = dataclasses.replace(settings.generation, **generation)
    initiative = {k: v for k, v in saved.get("initiative", {}).items()
                  if k in {f.name for f in dataclasses.fields(InitiativeSettings)}}
    if initiative_problem(initiative) is None:
        settings.initiative = dataclasses.replace(settings.initiative, **initiative)
