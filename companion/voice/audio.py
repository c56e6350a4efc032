"""Audio in and out: encoding synthesized speech, decoding what a person recorded.

WAV and raw PCM need only the standard library; mp3, opus, aac and flac are encoded, and any
recorded format (webm/opus from a browser, m4a, ogg, mp3) decoded, with PyAV (FFmpeg), which
comes with the voice extras.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np

from companion.errors import InvalidInput, NotAvailable

# OpenAI's response_format values and their media types
MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
               "flac": "audio/flac", "pcm": "audio/pcm"}
PCM_RATE = 24_000                 # OpenAI's raw pcm: 24 kHz, 16-bit signed little-endian, mono
LISTEN_RATE = 16_000              # what Whisper hears
SILENCE_PEAK = 0.01               # audio whose loudest sample stays below this (of full scale) is silent
_AV_CODECS = {"mp3": ("mp3", "libmp3lame", "s16p"), "opus": ("ogg", "libopus", "s16"),
              "aac": ("adts", "aac", "fltp"), "flac": ("flac", "flac", "s16")}


class InvalidAudio(InvalidInput):
    """Audio that cannot be used: unreadable, empty, silent or too long."""


@dataclass
class Pcm:
    """Mono 16-bit speech and its sample rate."""
    samples: np.ndarray     # int16
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0

    def __add__(self, other: "Pcm") -> "Pcm":
        return Pcm(np.concatenate([self.samples, other.samples]), self.rate)


def wav_bytes(audio: Pcm) -> bytes:
    """A WAV file of the audio."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.rate)
        w.writeframes(audio.samples.astype("<i2").tobytes())
    return out.getvalue()


def resample(samples: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Linear resampling of mono samples (enough for speech between 16 and 48 kHz)."""
    if rate == to_rate or not len(samples):
        return samples
    count = max(1, round(len(samples) * to_rate / rate))
    positions = np.linspace(0, len(samples) - 1, count)
    return np.interp(positions, np.arange(len(samples)), samples.astype(np.float32)).astype(samples.dtype)


def encode(audio: Pcm, fmt: str) -> bytes:
    """The audio as a file of one of MEDIA_TYPES' formats."""
    if fmt == "wav":
        return wav_bytes(audio)
    if fmt == "pcm":
        return resample(audio.samples, audio.rate, PCM_RATE).astype("<i2").tobytes()
    if fmt not in _AV_CODECS:
        raise InvalidInput(f"response_format must be one of {', '.join(MEDIA_TYPES)}")
    av = _av(f"response_format '{fmt}'")
    container, codec, sample_format = _AV_CODECS[fmt]
    rate = 48_000 if fmt == "opus" else audio.rate      # opus takes 8/12/16/24/48 kHz only
    samples = resample(audio.samples, audio.rate, rate)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        for part in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(part):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return out.getvalue()


def decode(data: bytes, max_seconds: float) -> np.ndarray:
    """Recorded audio of any common format as float32 mono samples at 16 kHz (what Whisper hears).

    InvalidAudio says why the bytes cannot be used: not audio, empty, silent, or longer than max_seconds."""
    if not data:
        raise InvalidAudio("the audio file is empty")
    av = _av("reading recorded audio")
    parts: list[np.ndarray] = []
    heard = 0
    try:
        with av.open(io.BytesIO(data), "r") as source:
            if not source.streams.audio:
                raise InvalidAudio("the file holds no audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=LISTEN_RATE)
            for frame in source.decode(audio=0):
                for part in resampler.resample(frame):
                    samples = part.to_ndarray().reshape(-1)
                    heard += len(samples)
                    if heard > max_seconds * LISTEN_RATE:
                        raise InvalidAudio(f"the audio is longer than {max_seconds:g} s (voice.max_audio_seconds)")
                    parts.append(samples)
            parts.extend(p.to_ndarray().reshape(-1) for p in resampler.resample(None))
    except InvalidAudio:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError) as exc:
        raise InvalidAudio(f"the file is not audio that can be read ({exc.__class__.__name__}: {exc})") from None
    if not parts or not sum(len(p) for p in parts):
        raise InvalidAudio("the file holds no audio samples")
    samples = np.concatenate(parts).astype(np.float32) / 32768.0
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise InvalidAudio("the audio is silent")
    return samples


def _av(purpose: str):
    try:
        import av
    except ImportError:
        raise NotAvailable(f"{purpose} needs PyAV: pip install av (it comes with companion[listen] "
                           "and companion[speak])") from None
    return av
