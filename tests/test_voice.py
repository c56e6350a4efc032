"""Voice: sentences split for speaking, audio in and out, the real Piper and Whisper round trip,
the OpenAI client's audio API, a stored reply spoken, and a streamed reply spoken as it is written."""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from pathlib import Path

import numpy as np
import openai
import pytest

from bench.voice import word_error_rate
from companion.config import VoiceSettings
from companion.errors import NotAvailable
from companion.voice.audio import MEDIA_TYPES, InvalidAudio, Pcm, decode, encode
from companion.voice.engines import Speaker, speakable, split_sentences
from companion.voice.service import SpeechCache

pytest.importorskip("piper")
pytest.importorskip("faster_whisper")

SENTENCES = ["My sister Anna moved to Lisbon last spring.", "She works in a small bakery near the river.",
             "We talk on the phone every Sunday evening."]


# pure parts ----------------------------------------------------------------------------------

def test_split_sentences_keeps_the_unfinished_rest():
    assert split_sentences("Hello there! How are") == (["Hello there!"], "How are")
    assert split_sentences('She said "no." Then *smiles* wide.\nNext') == (
        ['She said "no."', "Then *smiles* wide."], "Next")
    assert split_sentences("3.5 million") == ([], "3.5 million")      # a decimal point ends nothing
    assert split_sentences("... ") == ([], "")                         # nothing to say is dropped


def test_speakable_leaves_out_markup_and_links():
    assert speakable("*waves* Hi, see https://example.com/x **now**!") == "waves Hi, see now !"
    assert speakable("***") == ""


def test_word_error_rate():
    assert word_error_rate("a b c d", "a b c d") == 0
    assert word_error_rate("a b c d", "a x c") == 0.5


def test_speech_cache_drops_the_least_recently_used(tmp_path):
    cache = SpeechCache(tmp_path, 1)
    first, second = cache.path("one", "joe", 1.0, "wav"), cache.path("two", "joe", 1.0, "wav")
    cache.put(first, b"x" * 600_000)
    cache.put(second, b"y" * 600_000)
    assert cache.get(first) is None and cache.get(second) == b"y" * 600_000
    assert not list(tmp_path.glob("*.partial"))
    assert cache.path("one", "joe", 1.0, "wav") != cache.path("one", "joe", 1.5, "wav")


def test_a_speech_file_a_crash_cut_short_is_removed_at_start(tmp_path):
    """A SIGKILL while a reply's speech is written leaves `KEY.wav.partial`, which the size bound never
    counts nor removes (the soak of #28): the next start removes it; the whole files stay."""
    cache = SpeechCache(tmp_path, 1)
    whole = cache.path("one", "joe", 1.0, "wav")
    cache.put(whole, b"RIFF-whole")
    cut = tmp_path / (cache.path("two", "joe", 1.0, "wav").name + ".partial")
    cut.write_bytes(b"RIFF-half")
    cache.remove_partials()
    assert list(tmp_path.iterdir()) == [whole] and cache.get(whole) == b"RIFF-whole"


# audio in and out ----------------------------------------------------------------------------

def tone(seconds: float = 1.0, rate: int = 22050) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), rate)


@pytest.mark.parametrize("fmt", [f for f in MEDIA_TYPES if f != "pcm"])
def test_every_format_decodes_to_the_same_length(fmt):
    samples = decode(encode(tone(), fmt), max_seconds=10)
    assert abs(len(samples) / 16000 - 1.0) < 0.1


def test_raw_pcm_is_24khz_16bit():
    assert len(encode(tone(1.0), "pcm")) == 24000 * 2


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"), (b"not audio at all" * 64, "not audio"),
    (encode(Pcm(np.zeros(16000, np.int16), 16000), "wav"), "silent"),
    (encode(tone(3.0), "wav"), "longer than 2 s"),
])
def test_unusable_audio_says_why(data, reason):
    with pytest.raises(InvalidAudio, match=reason):
        decode(data, max_seconds=2)


# the engines ---------------------------------------------------------------------------------

@pytest.fixture
def voice(services):
    return services.voice


def test_round_trip_speaks_and_hears_the_same_words(voice):
    text = " ".join(SENTENCES)
    audio = voice.speak(text, None, None, "wav")
    heard = voice.transcribe(audio)
    assert word_error_rate(text, heard.text) <= 0.2, heard.text
    assert heard.language == "en" and heard.seconds > 4


def test_faster_speech_is_shorter(voice):
    slow = voice.speaker.synthesize(SENTENCES[0], speed=0.8)
    fast = voice.speaker.synthesize(SENTENCES[0], speed=1.6)
    assert fast.seconds < slow.seconds * 0.7


def test_an_english_model_refuses_another_language(voice):
    with pytest.raises(Exception, match="English only"):
        voice.transcribe(voice.speak("Hello.", None, None, "wav"), "de")


def test_without_the_extras_each_part_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("companion.voice.engines._has", lambda module: False)
    speaker = Speaker(VoiceSettings(), tmp_path)
    assert not speaker.available
    with pytest.raises(NotAvailable, match=r"pip install 'companion\[speak\]'"):
        speaker.synthesize("Hello.")


# HTTP ----------------------------------------------------------------------------------------

@pytest.fixture
def oai(app) -> openai.OpenAI:
    """The official OpenAI client, talking to the app through Flask's test client."""
    import httpx

    flask_client = app.test_client()

    def handler(request: httpx.Request) -> httpx.Response:
        response = flask_client.open(request.url.raw_path.decode(), method=request.method,
                                     headers=dict(request.headers), data=request.read())
        return httpx.Response(response.status_code, headers=dict(response.headers), content=response.data)

    return openai.OpenAI(base_url="http://localhost/v1", api_key="unused",
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_the_openai_client_speaks_and_transcribes(oai):
    text = " ".join(SENTENCES)   # a few sentences: Piper's voice varies a little from run to run
    spoken = oai.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="mp3")
    mp3 = spoken.read()
    assert mp3[:3] == b"ID3" or mp3[:2] == b"\xff\xfb" or mp3[0] == 0xFF
    heard = oai.audio.transcriptions.create(model="whisper-1", file=("speech.mp3", io.BytesIO(mp3), "audio/mpeg"))
    assert word_error_rate(text, heard.text) <= 0.2, heard.text
    text = oai.audio.transcriptions.create(model="whisper-1", file=("speech.mp3", io.BytesIO(mp3)),
                                           response_format="text")
    assert "Lisbon" in text
    with pytest.raises(openai.BadRequestError, match="silent"):
        oai.audio.transcriptions.create(model="whisper-1", file=("s.wav", io.BytesIO(
            encode(Pcm(np.zeros(16000, np.int16), 16000), "wav"))))


def test_speech_requests_are_checked(client):
    assert client.post("/v1/audio/speech", json={"input": ""}).status_code == 400
    assert client.post("/v1/audio/speech", json={"input": "hi", "speed": 9}).status_code == 400
    assert client.post("/v1/audio/speech", json={"input": "hi", "response_format": "ogg"}).status_code == 400
    too_long = client.post("/v1/audio/speech", json={"input": "a" * 5000})
    assert too_long.status_code == 400 and "4096" in too_long.get_json()["error"]["message"]
    pcm = client.post("/v1/audio/speech", json={"input": "Hello there.", "response_format": "pcm"})
    assert pcm.status_code == 200 and pcm.mimetype == "audio/pcm" and len(pcm.data) > 24000
    corrupt = client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(b"RIFF0000WAVEjunk" * 50), "a.wav")})
    assert corrupt.status_code == 400 and "not audio" in corrupt.get_json()["error"]["message"]
    assert client.post("/v1/audio/transcriptions", data={
        "file": (io.BytesIO(b"x"), "a.wav"), "response_format": "srt"}).status_code == 400


def test_voice_status_lists_the_bundled_voice(client):
    status = client.get("/api/voice").get_json()
    assert status["speak"]["available"] and status["listen"]["available"]
    assert {"name": "joe", "language": "en_US", "sample_rate": 22050} in status["speak"]["voices"]
    assert status["listen"]["model"] == "tiny.en"


def test_without_the_extras_the_endpoints_answer_501_with_the_install_command(client, monkeypatch):
    monkeypatch.setattr("companion.voice.engines._has", lambda module: False)
    status = client.get("/api/voice").get_json()
    assert not status["speak"]["available"] and not status["listen"]["available"]
    speech = client.post("/v1/audio/speech", json={"input": "Hello."})
    assert speech.status_code == 501 and "companion[speak]" in speech.get_json()["error"]["message"]
    heard = client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(b"x"), "a.wav")})
    assert heard.status_code == 501 and "companion[listen]" in heard.get_json()["error"]["message"]
    before = client.get("/api/chats").get_json()
    spoken = client.post("/api/prompt", json={"prompt": "Hi", "stream": True, "speak": True})
    assert spoken.status_code == 501 and client.get("/api/chats").get_json() == before


def test_a_stored_reply_is_spoken_in_its_companions_voice_and_cached(client, services):
    companion = client.get("/api/companions").get_json()["items"][0]
    patched = client.patch(f"/api/companions/{companion['id']}", json={"voice": {"speed": 1.5}})
    assert patched.get_json()["voice"] == {"voice": "joe", "speed": 1.5}
    reply = client.post("/api/prompt", json={"prompt": "Say hello."}).get_json()
    first = client.get(f"/api/messages/{reply['id']}/speech?format=wav")
    assert first.status_code == 200 and first.mimetype == "audio/wav"
    cached = list((Path(services.settings.data_dir) / "speech").glob("*.wav"))
    assert len(cached) == 1
    assert client.get(f"/api/messages/{reply['id']}/speech?format=wav").data == first.data
    with wave.open(io.BytesIO(first.data)) as w:
        fast_seconds = w.getnframes() / w.getframerate()
    normal = services.voice.speaker.synthesize(reply["text"], "joe", 1.0).seconds
    assert fast_seconds < normal * 0.85
    # the voice is the card's: an exported card keeps it
    exported = client.get(f"/api/companions/{companion['id']}/card.json").get_json()
    assert exported["data"]["extensions"]["voice"] == {"speed": 1.5}
    assert client.patch(f"/api/companions/{companion['id']}", json={"voice": {"speed": None}}).get_json()[
        "voice"] == {"voice": "joe", "speed": 1.0}
    assert client.patch(f"/api/companions/{companion['id']}", json={"voice": {"speed": "fast"}}).status_code == 400
    unknown = client.patch(f"/api/companions/{companion['id']}", json={"voice": {"voice": "nobody"}})
    assert unknown.status_code == 400 and "joe" in unknown.get_json()["error"]["message"]
    assert client.get("/api/messages/999999/speech").status_code == 404
    assert client.get(f"/api/messages/{reply['id']}/speech?format=ogg").status_code == 400


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in body.decode().split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        if name and data:
            events.append((name.group(1), json.loads(data.group(1))))
    return events


def test_a_streamed_reply_is_spoken_sentence_by_sentence_in_order(client, services):
    response = client.post("/api/prompt", json={"prompt": "Tell me about your day in three sentences.",
                                                "stream": True, "speak": True, "max_tokens": 60})
    events = sse_events(response.data)
    names = [name for name, _ in events]
    assert names[-1] == "done" and "audio" in names
    audio = [data for name, data in events if name == "audio"]
    assert [a["index"] for a in audio] == list(range(len(audio)))
    reply = events[-1][1]["message"]["text"]
    assert speakable(" ".join(a["text"] for a in audio)) == speakable(reply)
    # each sentence's audio follows the tokens that completed it, before the reply's end
    first_audio = names.index("audio")
    assert "token" in names[:first_audio]
    # the audio is the reply's speech: all of it heard together (the round trip above measures quality)
    spoken = Pcm(np.concatenate([np.frombuffer(wave.open(io.BytesIO(base64.b64decode(a["audio"]))).readframes(10**8),
                                               np.int16) for a in audio]), 22050)
    heard = services.voice.transcribe(encode(spoken, "wav"))
    said = " ".join(a["text"] for a in audio)
    assert word_error_rate(said, heard.text) <= 0.5, (said, heard.text)
    assert client.post("/api/prompt", json={"prompt": "Hi", "speak": True}).status_code == 400
    assert client.post("/api/prompt", json={"prompt": "Hi", "stream": True, "speak": "yes"}).status_code == 400


def test_a_group_reply_is_spoken_in_each_members_voice(client):
    first, second = (client.post("/api/companions", json={"name": name, "description": f"{name} is kind.",
                                                          "voice": {"speed": speed}}).get_json()
                     for name, speed in (("Ada", 1.0), ("Bo", 1.4)))
    assert second["voice"] == {"voice": "joe", "speed": 1.4}
    group = client.post("/api/groups", json={"name": "Two", "members": [first["id"], second["id"]],
                                             "strategy": "list"}).get_json()
    response = client.post(f"/api/groups/{group['id']}/turn", json={"text": "Hello both of you!", "stream": True,
                                                                     "speak": True, "max_tokens": 30})
    events = sse_events(response.data)
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("reply") == 2
    for member in (first, second):
        spoken = [d for n, d in events if n == "audio" and d["companion_id"] == member["id"]]
        assert spoken and [a["index"] for a in spoken] == list(range(len(spoken)))
    # each member's audio comes before its reply event
    assert names.index("audio") < names.index("reply")


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_cut_or_damaged_audio_is_read_or_refused_with_a_reason(fmt):
    whole = encode(tone(1.0), fmt)
    damaged = bytearray(whole)
    damaged[len(damaged) // 3: len(damaged) // 3 + 64] = b"\xff" * 64
    for data in (whole[:40], whole[: len(whole) // 2], bytes(damaged), b"OggS" + whole[4:200]):
        try:
            samples = decode(data, max_seconds=10)
        except InvalidAudio as exc:          # a 400 with its reason, never another error
            assert str(exc)
        else:
            assert len(samples) > 0
