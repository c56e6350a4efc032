"""A chat's model state (the KV cache and the tokens it holds) kept on disk, so that the prompt
prefix a chat has built survives a restart and a switch to another chat or companion.

On a small board llama.cpp reads a prompt at a few dozen tokens a second: a cold 1,500-token
history costs most of a minute, a restored one only the new message. A state is saved when
another chat takes the model (copied out of it then, written to disk on a background thread, so
the turn that switched does not wait for the disk), after a turn while the daemon is idle, and
when it stops; it is
restored when a chat's next prompt shares more of its beginning with the saved tokens than with
what the model holds. Files are written atomically, tied to the model and the settings that
shape the cache (a state from another model is never loaded), and bound in total size: the
least recently used go first.

A reply's tokens are evaluated one at a time, and llama.cpp rounds a token alone otherwise than
in a batch, so the generator reuses only what batches evaluated. As soon as the model is free
after a turn, the reply is settled: evaluated again in batches (a few hundred milliseconds of
otherwise idle time), so the next turn reads only its own new tokens, as llama.cpp's server does,
and its reply is still the one a cold cache gives.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from companion.lru_files import remove_partials, trim_least_recent, write_atomically
from companion.model.lock import ModelLock

log = logging.getLogger(__name__)

MAGIC = b"companion-kv-state\n"
IDLE_SECONDS = 2.0      # a turn's state is saved once the model has been idle this long
SETTLE_RETRY_SECONDS = 0.02   # after the model was free, how long before background work tries it again
MODEL_WAIT_SECONDS = 1.0      # the longest wait for a turn to release the model before looking again


@dataclass
class KeptState:
    """A chat's state copied out of the model, to be written to disk under key."""
    chat_id: int
    key: str
    fingerprint: str
    tokens: list[int]
    data: memoryview


@dataclass
class SavedState:
    """A state file's tokens; its data (the KV cache) is read only when it is restored."""
    path: Path
    tokens: list[int]
    data_offset: int
    data_size: int

    def data(self) -> bytearray:
        """The KV cache, read straight into one buffer the generator can load from (no copy)."""
        buffer = bytearray(self.data_size)
        with open(self.path, "rb") as fh:
            fh.seek(self.data_offset)
            if fh.readinto(buffer) != self.data_size:
                raise OSError(f"{self.path.name} was cut short while it was read")
        return buffer


def before_key(chat_id: int) -> str:
    """The key of a chat's state from before its window moved on (kept for a swipe)."""
    return f"{chat_id}-before"


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many tokens two sequences share from the start."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class StateFiles:
    """State files in one folder, each tied to a fingerprint (model and cache settings), bound
    in total size."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.kv"

    def write(self, key: str, fingerprint: str, tokens: list[int], data: bytes | memoryview) -> None:
        """Write a state atomically (a crash leaves the old file or none, never half a file),
        then drop the least recently used files beyond the size bound."""
        self.folder.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"fingerprint": fingerprint, "tokens": len(tokens), "data": len(data)}).encode()
        target = self.path(key)
        partial = target.with_suffix(f".partial-{os.getpid()}-{threading.get_ident()}")
        write_atomically(target, partial, MAGIC + struct.pack("<I", len(header)) + header,
                         array("i", tokens).tobytes(), data)
        self.evict(keep=target)

    def read(self, key: str, fingerprint: str) -> SavedState | None:
        """The saved state of a key made with this fingerprint; None when there is none. A file
        made by another model or settings, or one that is cut short, is removed with a log line."""
        path = self.path(key)
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                if fh.read(len(MAGIC)) != MAGIC:
                    raise ValueError("not a state file")
                (length,) = struct.unpack("<I", fh.read(4))
                header = json.loads(fh.read(length))
                if header.get("fingerprint") != fingerprint:
                    log.info("kv state %s was saved with another model or cache settings: ignored", path.name)
                    path.unlink(missing_ok=True)
                    return None
                tokens = array("i")
                tokens.frombytes(fh.read(4 * int(header["tokens"])))
                offset = fh.tell()
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, struct.error) as exc:
            log.warning("kv state %s cannot be read (%s): ignored", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        if len(tokens) != int(header["tokens"]) or size != offset + int(header["data"]):
            log.warning("kv state %s is cut short (%d of %d bytes): ignored", path.name, size,
                        offset + int(header["data"]))
            path.unlink(missing_ok=True)
            return None
        os.utime(path)     # recently used
        return SavedState(path, tokens.tolist(), offset, int(header["data"]))

    def remove_partials(self) -> None:
        """Remove what writes cut short by a crash left (they never got their final name)."""
        remove_partials(self.folder, "*.partial-*")

    def evict(self, keep: Path | None = None) -> None:
        """Remove the least recently used files until the rest fit the size bound."""
        trim_least_recent(self.folder.glob("*.kv"), self.max_bytes, keep)


class ChatStates:
    """Which chat's state the model holds, saving it and restoring others' as chats take turns.

    Works with a generator that can export and import its state (the local one); with others
    it does nothing."""

    def __init__(self, files: StateFiles, lock: ModelLock, generator: Callable[[], object],
                 rehearse: Callable[[int], list[int] | None] | None = None) -> None:
        self.files = files
        self.lock = lock
        self.generator = generator       # the generator serving now (it can be swapped)
        self.rehearse = rehearse         # a chat's next prompt's start, in tokens (TurnService.rehearse)
        self.kept_before: int | None = None   # the chat whose state was kept before a rehearsal moved on
        self.opening: int | None = None       # a chat just made, whose start is to be read (open)
        self.owner: int | None = None    # the chat whose state the model holds
        self.unsaved = False             # the owner's state changed since it was saved
        self.unsettled = False           # the owner's reply was evaluated one token at a time (settle)
        self._pending: dict[str, KeptState] = {}   # states taken from the model, not yet on disk, by key
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.restored = 0                # states restored since start
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._last_turn = 0.0
        self._thread: threading.Thread | None = None

    def _local(self):
        generator = self.generator()
        return generator if hasattr(generator, "export_state") and generator.state == "ready" else None

    def _saving(self) -> bool:
        return self.files.max_bytes > 0

    # called holding the model ------------------------------------------------------------------

    def before_turn(self, chat_id: int, request) -> None:
        """Before a chat's generation: keep the state of the chat that held the model, and bring
        back this chat's when it shares more of the prompt's beginning than what is held now."""
        generator = self._local()
        if generator is None or not self._saving() or (self.owner == chat_id and self.kept_before != chat_id):
            return    # the model holds this chat already: nothing saved of it is further along
        self.kept_before = None
        prompt_tokens = generator.prompt_token_ids(request)
        if self.owner is not None and self.owner != chat_id and self.unsaved:
            self._take(generator, self.owner)     # written to disk on the background thread, not now
            self._wake.set()
        held = common_prefix(generator.cached_tokens(), prompt_tokens)
        fingerprint = generator.fingerprint()
        kept = [self._kept(key, fingerprint) for key in (str(chat_id), before_key(chat_id))]
        tokens, load = max((k for k in kept if k is not None), key=lambda k: common_prefix(k[0], prompt_tokens),
                           default=([], bytearray))
        if common_prefix(tokens, prompt_tokens) > held:
            if generator.import_state(tokens, load()):
                self.restored += 1
                log.info("chat %s: restored a kv state of %d tokens", chat_id, len(tokens))
            else:
                log.warning("chat %s: the kv state did not load; the prompt is evaluated whole", chat_id)
        self.owner = chat_id

    def _kept(self, key: str, fingerprint: str) -> tuple[list[int], Callable[[], bytearray | memoryview]] | None:
        """A kept state's tokens and how to load it: taken and not written yet, else on disk."""
        with self._pending_lock:
            pending = self._pending.get(key)
        if pending is not None and pending.fingerprint == fingerprint:
            return pending.tokens, (lambda: pending.data)
        saved = self.files.read(key, fingerprint)
        return (saved.tokens, saved.data) if saved is not None else None

    def before_other_use(self) -> None:
        """Before a generation that is no chat's (a plain completion): keep the held chat's state."""
        generator = self._local()
        if generator is not None and self.owner is not None and self.unsaved and self._saving():
            self._take(generator, self.owner)
            self._wake.set()
        self.owner = None

    def after_turn(self, chat_id: int) -> None:
        """After a chat's generation: its reply is settled as soon as the model is free, its state
        saved once the model is idle."""
        self.owner, self.unsaved, self.unsettled = chat_id, self._saving(), True
        self._last_turn = time.monotonic()
        self._wake.set()

    def forget(self) -> None:
        """The model was replaced: it holds nobody's state, and nothing of it is to be settled."""
        self.owner, self.unsaved, self.unsettled, self.kept_before = None, False, False, None

    def drop(self, chat_ids: list[int]) -> None:
        """Chats were deleted: their kept states go (on disk and not yet written), and the one the
        model holds, if it is one of them, is not saved."""
        gone = set(chat_ids)
        with self._write_lock:      # a write under way ends first, so that no file comes back
            with self._pending_lock:
                for key in [k for k, kept in self._pending.items() if kept.chat_id in gone]:
                    del self._pending[key]
            for chat_id in gone:
                for key in (str(chat_id), before_key(chat_id)):
                    self.files.path(key).unlink(missing_ok=True)
        if self.owner in gone:
            self.unsaved = False
        if self.opening in gone:
            self.opening = None

    def _take(self, generator, chat_id: int, key: str | None = None) -> None:
        """Copy the held chat's state out of the model (holding it: tens of milliseconds), to be
        written by _write_pending without the model, under the chat's key (or another)."""
        try:
            tokens, data = generator.export_state()
            kept = KeptState(chat_id, key or str(chat_id), generator.fingerprint(), tokens, data)
        except Exception:
            log.exception("chat %s: the kv state was not taken from the model", chat_id)
            return
        with self._pending_lock:
            self._pending[kept.key] = kept
        if key is None:
            self.unsaved = False

    def _write_pending(self) -> bool:
        """Write the states taken from the model (a switch, an idle save) to disk, without holding
        the model: a turn that comes meanwhile does not wait for the disk. False when one failed
        (its chat, if the model still holds it, is saved again later)."""
        written = True
        with self._write_lock:
            with self._pending_lock:
                waiting = list(self._pending.values())
            for kept in waiting:
                started = time.monotonic()
                try:
                    self.files.write(kept.key, kept.fingerprint, kept.tokens, kept.data)
                    log.info("chat %s: saved a kv state of %d tokens (%.1f MB) in %.2f s", kept.chat_id,
                             len(kept.tokens), len(kept.data) / 1e6, time.monotonic() - started)
                except Exception:
                    log.exception("chat %s: the kv state was not saved", kept.chat_id)
                    written = False
                    if self.owner == kept.chat_id and kept.key == str(kept.chat_id):
                        self.unsaved = True
                with self._pending_lock:
                    if self._pending.get(kept.key) is kept:
                        del self._pending[kept.key]
        return written

    # in the background -------------------------------------------------------------------------

    def start(self) -> None:
        """Clear what a crash left half-written, then settle and save after turns on a background thread."""
        self.files.remove_partials()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kv-states", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._closing.is_set():
                if self.opening is not None and not self.open_now():
                    self._wait_for_model()
                    continue
                if self.unsettled and not self.settle_now():
                    self._wait_for_model()
                    continue
                self._write_pending()
                if not self.unsaved:
                    break
                idle = time.monotonic() - self._last_turn
                if idle >= IDLE_SECONDS and self.save_now(wait=False):
                    break
                self._wake.wait(max(0.0, IDLE_SECONDS - idle) or IDLE_SECONDS)   # a turn wakes it early
                self._wake.clear()

    def _wait_for_model(self) -> None:
        """Wait while a turn holds the model (woken when it lets go, not polling it); when the
        model was free but not to be had (a turn was about to take it), wait a moment."""
        if self.lock.wait_idle(MODEL_WAIT_SECONDS):
            self._closing.wait(SETTLE_RETRY_SECONDS)

    def settle_now(self) -> bool:
        """Read the held chat's next prompt as far as it is known (rehearse: the history with the
        last reply, and where the window moves on, the window it moves to) in batches, else
        evaluate the last reply again in batches (the generator's settle), so the next turn reads
        only what is new; True when done or nothing is to be done, False when the model is busy.
        A turn that comes meanwhile stops it between batches; the rest is then read with that
        turn's prompt."""
        if not self.unsettled:
            return True
        with self._background("the next prompt was not read") as (stop, generator):
            if stop is None:
                return False
            unsettled, self.unsettled = self.unsettled, False   # a turn that stops it reads the rest itself
            if generator is not None and hasattr(generator, "settle") and unsettled:
                coming = self._next_prompt()
                if coming is None:
                    generator.settle(stop)
                    return True
                cached = generator.cached_tokens()
                if self._saving() and self.owner is not None and common_prefix(cached, coming) < len(cached):
                    # the next prompt leaves part of the cache (the window moves on): what it holds
                    # is kept apart, for a swipe of the last reply, whose prompt still starts with it
                    self._take(generator, self.owner, before_key(self.owner))
                    self.kept_before = self.owner
                generator.prefill(coming, stop)     # saved when idle, as a turn's state is
        return True

    @contextmanager
    def _background(self, failure: str) -> Iterator[tuple[threading.Event | None, Any]]:
        """Hold the model for background work: (the event a turn sets to stop it, the local
        generator), or (None, None) when the model is busy; what fails is logged."""
        stop = self.lock.hold_for_background()
        if stop is None:
            yield None, None
            return
        try:
            yield stop, self._local()
        except Exception:
            log.exception(failure)
        finally:
            self.lock.release_background()

    def _next_prompt(self, chat_id: int | None = None) -> list[int] | None:
        """A chat's (default: the held one's) next prompt's start (rehearse), or None when it
        cannot be told."""
        chat_id = self.owner if chat_id is None else chat_id
        if self.rehearse is None or chat_id is None:
            return None
        try:
            return self.rehearse(chat_id)
        except Exception:
            log.exception("chat %s: the next prompt was not rehearsed", chat_id)
            return None

    def open(self, chat_id: int) -> None:
        """A chat was just made: its start (the card, its greeting) is read while the model is
        free, the held chat's state kept first, so its first turn reads only its note and message."""
        if self._saving():     # without kept states the held chat's cache is not given up for a guess
            self.opening = chat_id
            self._wake.set()

    def open_now(self) -> bool:
        """Read the start of the chat open() was told of; False while the model is busy."""
        chat_id = self.opening
        if chat_id is None:
            return True
        with self._background(f"chat {chat_id}: its start was not read") as (stop, generator):
            if stop is None:
                return False
            self.opening = None if self.opening == chat_id else self.opening
            coming = self._next_prompt(chat_id) if hasattr(generator, "prefill") else None
            if generator is not None and coming is not None and chat_id != self.owner:
                if self.owner is not None and self.unsaved:
                    self._take(generator, self.owner)     # kept as at a switch
                self.owner, self.kept_before, self.unsettled, self.unsaved = chat_id, chat_id, False, False
                generator.prefill(coming, stop)
        return True

    def save_now(self, wait: bool = True) -> bool:
        """Save the held chat's state if it changed, and what a switch took; True when nothing is
        left unsaved. With wait, waits for a running generation to end (at stop). The model is
        held only while its state is copied, not while it is written."""
        if not self.unsaved or self.owner is None:
            return self._write_pending()
        stop = self.lock.hold_for_background()
        deadline = time.monotonic() + 30
        while stop is None and wait and time.monotonic() < deadline:
            time.sleep(0.05)
            stop = self.lock.hold_for_background()
        if stop is None:
            return False
        try:
            generator = self._local()
            if generator is not None and self.owner is not None and self.unsaved:
                self._take(generator, self.owner)
        finally:
            self.lock.release_background()
        return self._write_pending() and not self.unsaved

    def close(self) -> None:
        """Save what is unsaved and stop the background thread."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._saving():
            self.save_now(wait=True)
