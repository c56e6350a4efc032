"""The voice service: what the APIs call to speak text and stored replies and to hear recordings."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from companion.config import VoiceSettings, limits
from companion.errors import BadRequest, NotFound, PayloadTooLarge
from companion.formats.cards import card_voice
from companion.lru_files import remove_partials, trim_least_recent, write_whole
from companion.store import Store
from companion.voice.audio import MEDIA_TYPES, decode, encode
from companion.voice.engines import LISTEN_INSTALL, SPEAK_INSTALL, Listener, Speaker, Transcript
from companion.voice.narration import Narration

SPEED = limits(VoiceSettings)["speed"]


class SpeechCache:
    """Spoken stored replies on disk, by text, voice, speed and format; least recently used go first."""

    def __init__(self, folder: Path, max_mb: int) -> None:
        self.folder = folder
        self.max_bytes = max_mb * 1024 * 1024
        self._lock = threading.Lock()

    def path(self, text: str, voice: str, speed: float, fmt: str) -> Path:
        key = hashlib.sha256(json.dumps([text, voice, round(speed, 3), fmt]).encode()).hexdigest()[:32]
        return self.folder / f"{key}.{fmt}"

    def remove_partials(self) -> None:
        """Remove what writes cut short by a crash left (they never got their final name)."""
        remove_partials(self.folder, "*.partial")

    def get(self, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
            os.utime(path)          # used now: the last to go
            return data
        except OSError:
            return None

    def put(self, path: Path, data: bytes) -> None:
        if not self.max_bytes or len(data) > self.max_bytes:
            return
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_whole(path, data)             # never a half-written file under the real name
            trim_least_recent((p for p in self.folder.iterdir() if not p.name.endswith(".partial")),
                              self.max_bytes, path)


class VoiceService:
    """Speaking and listening for every dialect, over the optional engines."""

    def __init__(self, settings: VoiceSettings, store: Store, data_dir: Path) -> None:
        self.settings = settings
        self.store = store
        self.speaker = Speaker(settings, data_dir / "voices")
        self.listener = Listener(settings)
        self.cache = SpeechCache(data_dir / "speech", settings.cache_mb)

    def status(self) -> dict:
        """What GET /api/voice says: which parts are installed, the voices, the limits."""
        speak = self.speaker.available
        return {
            "speak": {"available": speak, "install": SPEAK_INSTALL,
                      "voices": [f.info() for f in self.speaker.voice_files().values()] if speak else [],
                      "voice": self.settings.voice, "speed": self.settings.speed},
            "listen": {"available": self.listener.available, "install": LISTEN_INSTALL,
                       "language": self.settings.language, "model": self.listener.model_name},
            "limits": {"max_text_chars": self.settings.max_text_chars,
                       "max_audio_seconds": self.settings.max_audio_seconds,
                       "max_upload_mb": self.settings.max_upload_mb},
        }

    def voice_of(self, companion_id: int | None) -> dict:
        """The voice and speed a companion speaks with: its card's over [voice]'s."""
        own = {}
        if companion_id is not None:
            companion = self.store.get_companion(companion_id)
            own = card_voice(companion.get("card") or {}) if companion else {}
        speed = own.get("speed")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or SPEED.check(speed, "speed"):
            speed = self.settings.speed          # a card's own bad speed: [voice]'s
        return {"voice": own.get("voice") or self.settings.voice, "speed": float(speed)}

    def speak(self, text: str, voice: str | None, speed: float | None, fmt: str) -> bytes:
        """Text spoken as an audio file of a format of audio.MEDIA_TYPES."""
        self.check_format(fmt)
        return encode(self.speaker.synthesize(text, voice, speed), fmt)

    @staticmethod
    def check_format(fmt: str) -> None:
        if fmt not in MEDIA_TYPES:
            raise BadRequest(f"format must be one of {', '.join(MEDIA_TYPES)}")

    def message_speech(self, message_id: int, fmt: str) -> bytes:
        """A stored message spoken by whoever wrote it (a reply: its companion's voice), from the
        cache when it was spoken before with the same text, voice and speed."""
        self.check_format(fmt)
        message = self.store.get_message(message_id)
        if message is None:
            raise NotFound(f"no message with id {message_id}")
        companion_id = message["companion_id"]
        if companion_id is None:
            chat = self.store.get_chat(message["chat_id"])
            companion_id = chat["companion_id"] if chat else None
        if not self.speaker.available:
            raise self.speaker.missing()
        chosen = self.voice_of(companion_id if message["ai"] else None)
        voice = self.speaker.voice_name(chosen["voice"])
        path = self.cache.path(message["text"], voice, chosen["speed"], fmt)
        cached = self.cache.get(path)
        if cached is not None:
            return cached
        data = self.speak(message["text"], voice, chosen["speed"], fmt)
        self.cache.put(path, data)
        return data

    def narration(self, companion_id: int | None, fmt: str = "wav") -> Narration:
        """A narrator for a streamed reply of a companion (NotAvailable without the speak extra)."""
        if not self.speaker.available:
            raise self.speaker.missing()
        chosen = self.voice_of(companion_id)
        return Narration(self.speaker, chosen["voice"], chosen["speed"], fmt)

    def transcribe(self, data: bytes, language: str | None = None) -> Transcript:
        """What is said in a recording of any common format; InvalidAudio (a 400) says why one cannot be heard."""
        if not self.listener.available:
            raise self.listener.missing()
        if len(data) > self.settings.max_upload_mb * 1024 * 1024:
            raise PayloadTooLarge(f"the audio file is larger than {self.settings.max_upload_mb:g} MiB "
                                  "(voice.max_upload_mb)")
        self.listener.language_of(language)      # a bad language is told before the audio is read
        return self.listener.transcribe(decode(data, self.settings.max_audio_seconds), language)
