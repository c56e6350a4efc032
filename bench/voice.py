"""Benchmark: the voice on these cores.

1. **Real-time factor** (seconds of work per second of audio; below 1 is faster than speech) of
   speaking (Piper, the bundled en_US-joe-medium) and of listening (faster-whisper, the bundled
   tiny.en, int8) with 1 and with 2 threads, interleaved sentence by sentence. Listening hears the
   audio that speaking made, so the same run gives the round trip's word error rate.
2. **Time to the first audio of a reply**, in-process through the HTTP handlers with the real model:
   a streamed reply with `"speak": true` (each sentence spoken as soon as it is written) against
   the simplest honest baseline, what a client without it does: stream the reply, then ask
   `/v1/audio/speech` for the whole text. Arms alternate round by round on the same prompts.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

from .common import alternating, load_embedder, median, ratio, rounded
from .script import user_lines

PARAGRAPHS = [
    "My sister Anna moved to Lisbon last spring. She works in a small bakery near the river.",
    "I planted tomatoes and basil this weekend, and the rain finally came on Sunday evening.",
    "Tomorrow I have a job interview at the library at ten, so I should sleep early tonight.",
    "We watched a film about whales, and afterwards we walked home along the harbour.",
    "Can you remind me what my grandmother's recipe for plum jam needed? I forgot the spices.",
    "The chess tournament was long. I won two games, lost one, and drew the final.",
]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(expected: str, heard: str) -> float:
    """Word-level edit distance over the number of expected words (the tests' measure too)."""
    a, b = _words(expected), _words(heard)
    row = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[len(b)] / max(1, len(a))


def real_time_factors(rounds: int) -> dict:
    from companion.config import VoiceSettings
    from companion.voice.audio import LISTEN_RATE, resample
    from companion.voice.engines import Listener, Speaker

    arms = ["1", "2"]
    speakers = {arm: Speaker(VoiceSettings(threads=int(arm)), Path("/nonexistent")) for arm in arms}
    listeners = {arm: Listener(VoiceSettings(threads=int(arm))) for arm in arms}
    load = {}
    for arm in arms:          # loading is timed once, apart from the factors
        began = time.perf_counter()
        speakers[arm].synthesize("Hello.")
        listeners[arm].transcribe(resample(speakers[arm].synthesize("Hello there.").samples, 22050, LISTEN_RATE)
                                  .astype("float32") / 32768)
        load[arm] = time.perf_counter() - began
    tts: dict[str, list[float]] = {arm: [] for arm in arms}
    stt: dict[str, list[float]] = {arm: [] for arm in arms}
    errors: list[float] = []
    for i in range(rounds):
        for text in PARAGRAPHS:
            for arm in alternating(i, arms):
                began = time.perf_counter()
                pcm = speakers[arm].synthesize(text)
                tts[arm].append((time.perf_counter() - began) / pcm.seconds)
                samples = resample(pcm.samples, pcm.rate, LISTEN_RATE).astype("float32") / 32768
                began = time.perf_counter()
                heard = listeners[arm].transcribe(samples)
                stt[arm].append((time.perf_counter() - began) / pcm.seconds)
                errors.append(word_error_rate(text, heard.text))
    return {
        "paragraphs": len(PARAGRAPHS), "rounds": rounds,
        "tts_rtf_median": {f"{arm}_thread": rounded(median(tts[arm])) for arm in arms},
        "stt_rtf_median": {f"{arm}_thread": rounded(median(stt[arm])) for arm in arms},
        "tts_2_over_1_thread": ratio(median(tts["2"]), median(tts["1"])),
        "stt_2_over_1_thread": ratio(median(stt["2"]), median(stt["1"])),
        "first_use_seconds": {f"{arm}_thread": rounded(load[arm]) for arm in arms},
        "round_trip_wer_median": rounded(median(errors)), "round_trip_wer_max": rounded(max(errors)),
    }


def first_audio(rounds: int, max_tokens: int) -> dict:
    from companion.app import create_app
    from companion.config import load_settings
    from companion.model.local import LlamaGenerator, resolve_model_path
    from companion.services import build_services

    arms = ["streamed", "after"]
    embedder, _ = load_embedder()
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    reply_done: dict[str, list[float]] = {arm: [] for arm in arms}
    sentences: list[int] = []
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(env={}, overrides={
            "data_dir": folder, "model": {"n_ctx": 2048},
            "generation": {"temperature": 0.0, "max_tokens": max_tokens, "seed": 1, "top_k": 1}})
        generator = LlamaGenerator(resolve_model_path(settings.model, Path(folder)), settings.model)
        generator.load()
        services = build_services(settings, generator=generator, embedder=embedder)
        client = create_app(settings, services).test_client()
        client.post("/v1/audio/speech", json={"input": "Warm up.", "response_format": "wav"})
        lines = user_lines(rounds * 2)
        for i in range(rounds):
            for n, arm in enumerate(alternating(i, arms)):
                prompt = lines[2 * i + n] + " Tell me three things about it."
                began = time.perf_counter()
                response = client.post("/api/prompt", json={"prompt": prompt, "stream": True,
                                                            "speak": arm == "streamed"}, buffered=False)
                first = None
                text = ""
                count = 0
                for block in response.response:
                    chunk = block.decode() if isinstance(block, bytes) else block
                    if chunk.startswith("event: audio") and first is None:
                        first = time.perf_counter() - began
                    if chunk.startswith("event: audio"):
                        count += 1
                        json.loads(chunk.split("data: ", 1)[1])
                    if chunk.startswith("event: done"):
                        reply_done[arm].append(time.perf_counter() - began)
                        text = json.loads(chunk.split("data: ", 1)[1])["message"]["text"]
                response.close()
                if arm == "after":
                    audio = client.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
                    assert audio.status_code == 200, audio.data
                    first = time.perf_counter() - began
                else:
                    sentences.append(count)
                times[arm].append(first)
        services.close()
    return {
        "rounds": rounds, "max_tokens": max_tokens, "median_sentences_per_reply": median(sentences),
        "median_first_audio_s": {arm: rounded(median(times[arm])) for arm in arms},
        "median_reply_done_s": {arm: rounded(median(reply_done[arm])) for arm in arms},
        "first_audio_streamed_over_after": ratio(median(times["streamed"]), median(times["after"])),
        "note": "streamed: speak=true, the first audio event; after: the reply streamed, then /v1/audio/speech "
                "for its whole text (a client without speak)",
    }


def run(rounds: int = 3, reply_rounds: int = 6, max_tokens: int = 80) -> dict:
    """Real-time factors with 1 and 2 threads, and time to the first audio of a reply."""
    return {"real_time_factor": real_time_factors(rounds), "first_audio": first_audio(reply_rounds, max_tokens)}
