"""The service layer, built once from Settings: store, model, memory and the services over them."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from companion import __version__
from companion.characters.companions import CompanionService
from companion.characters.lorebooks import LorebookService
from companion.characters.presets import PresetService
from companion.chat.chats import ChatsService
from companion.chat.groups import GroupService
from companion.chat.initiative import InitiativeScheduler
from companion.chat.messages import MessageService
from companion.chat.summaries import SummaryService
from companion.chat.turns import TurnService
from companion.config import Settings
from companion.events import EventBus, StateWatch
from companion.memory.embedder import Embedder, make_embedder
from companion.memory.recall import LongTermMemory
from companion.model.backends import make_generator
from companion.model.generation import Generator
from companion.model.service import ModelService, apply_saved_config
from companion.names import ModelNames
from companion.store import Store
from companion.voice.service import VoiceService

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the HTTP handlers and the CLI call."""
    settings: Settings
    store: Store
    embedder: Embedder
    memory: LongTermMemory
    turns: TurnService
    messages: MessageService
    companions: CompanionService
    models: ModelService
    names: ModelNames          # what a request's model name means (Ollama, /v1)
    lorebooks: LorebookService
    presets: PresetService
    chats: ChatsService
    summaries: SummaryService
    events: EventBus
    groups: GroupService
    initiative: InitiativeScheduler
    state_watch: StateWatch
    voice: VoiceService

    @property
    def generator(self) -> Generator:
        """The model serving now (it can be swapped at run time)."""
        return self.turns.generator

    def start(self) -> None:
        """Load the model and embedder in the background, then reconcile the memory index."""
        self.generator.start()
        self.embedder.start()
        threading.Thread(target=self._reconcile, name="memory-reconcile", daemon=True).start()
        self.summaries.start()
        self.voice.cache.remove_partials()
        self.turns.states.start()
        self.state_watch.start()
        self.initiative.start()

    def loading_states(self) -> dict[str, dict]:
        """The model's and the embedder's state, as the live events tell them."""
        return {"model": {"path": self.generator.path, "state": self.generator.state, "error": self.generator.error},
                "embedder": {"path": self.embedder.path, "state": self.embedder.state, "error": self.embedder.error}}

    def _reconcile(self) -> None:
        if not self.embedder.wait_ready():
            return
        try:
            added, removed = self.memory.reconcile()
            log.info("memory index reconciled: %d indexed, %d removed", added, removed)
            self.memory.warm()
        except Exception:
            log.exception("memory reconcile failed")

    def status(self) -> dict:
        """What /api/status and `companion doctor` report."""
        indexed: int | str
        try:
            indexed = self.memory.indexed_count()
        except Exception as exc:
            indexed = f"error: {exc}"
        return {
            "version": __version__,
            "data_dir": self.settings.data_dir,
            "model": {"path": self.generator.path, "name": Path(self.generator.path).name,
                      "n_ctx": self.generator.n_ctx, "n_ctx_reason": self.generator.n_ctx_reason,
                      "state": self.generator.state,
                      "error": self.generator.error, "prompt_format": self.generator.template,
                      "prompt_format_note": self.generator.template_note},
            "embedder": {"path": self.embedder.path, "name": self.embedder.name,
                         "state": self.embedder.state, "error": self.embedder.error},
            "counts": {"companions": self.store.count("companions"),
                       "chats": self.store.count("chats"),
                       "messages": self.store.count("messages"),
                       "memories": self.store.count("memories"),
                       "indexed_memories": indexed},
        }

    def close(self) -> None:
        """Stop background work and the live events, release the memory index and the database."""
        self.initiative.close()
        self.state_watch.close()
        self.events.close()
        self.summaries.close()
        self.turns.states.close()      # the held chat's KV cache, kept for the next start
        self.memory.close()
        self.store.close()


def build_services(settings: Settings, generator: Generator | None = None,
                   embedder: Embedder | None = None) -> Services:
    """Wire the services for a data dir; tests pass an already-loaded generator and embedder."""
    data = Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    store = Store(data / "companion.db")
    events = EventBus(settings.server.event_buffer)
    store.on_change = events.publish
    apply_saved_config(settings, store)
    if generator is None:
        generator = make_generator(settings.model, data)
    if embedder is None:
        embedder = make_embedder(settings.memory)
    memory = LongTermMemory(store, embedder, data / "chroma", settings.memory)
    lorebooks = LorebookService(store)
    turns = TurnService(store, memory, generator, settings, lorebooks, events.publish)
    companions = CompanionService(store, memory, lorebooks, data / "avatars")
    models = ModelService(settings, store, turns)
    services = Services(settings=settings, store=store, embedder=embedder, memory=memory, turns=turns,
                    messages=MessageService(store, memory),
                    lorebooks=lorebooks, presets=PresetService(store), chats=ChatsService(store, memory),
                    summaries=SummaryService(store, memory, turns, settings.memory),
                    companions=companions, models=models, names=ModelNames(models, companions, embedder),
                    events=events, groups=GroupService(store),
                    initiative=InitiativeScheduler(store, turns, settings, turns.now),
                    state_watch=StateWatch(events.publish, lambda: services.loading_states()),
                    voice=VoiceService(settings.voice, store, data))
    services.chats.opened = turns.states.open     # a new chat's start is read while nobody waits
    services.chats.chats_deleted = services.companions.chats_deleted = services.groups.chats_deleted = turns.states.drop
    return services
