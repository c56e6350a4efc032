"""A reply spoken sentence by sentence while it is written (a streamed reply with "speak": true)."""

from __future__ import annotations

import base64
import logging
import threading
from typing import Iterator

from companion.voice.audio import encode
from companion.voice.engines import Speaker, speakable, split_sentences

log = logging.getLogger(__name__)


class Narration:
    """A reply spoken sentence by sentence while it is written: spoken() takes each piece of the text
    as it comes and hands out the audio ready so far; a worker thread speaks each complete sentence;
    ending() hands out the rest, in order, once the text is complete."""

    def __init__(self, speaker: Speaker, voice: str | None, speed: float | None, fmt: str = "wav") -> None:
        self.speaker, self.voice, self.speed, self.fmt = speaker, voice, speed, fmt
        self._text = ""
        self._queue: list[tuple[int, str]] = []
        self._done: dict[int, dict] = {}
        self._next_out = 0
        self._count = 0
        self._finished = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="narration", daemon=True)
        self._thread.start()

    def _feed(self, piece: str) -> None:
        """More of the reply's text."""
        sentences, self._text = split_sentences(self._text + piece)
        self._add(sentences)

    def _finish(self) -> None:
        """The reply is complete: its last words are a sentence too."""
        rest, self._text = self._text.strip(), ""
        self._add([rest] if speakable(rest) else [])
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _add(self, sentences: list[str]) -> None:
        if not sentences:
            return
        with self._cond:
            for sentence in sentences:
                self._queue.append((self._count, sentence))
                self._count += 1
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed and not self._finished:
                    self._cond.wait()
                if self._closed or not self._queue:
                    return
                index, sentence = self._queue.pop(0)
            try:
                pcm = self.speaker.synthesize(sentence, self.voice, self.speed)
                event = {"index": index, "text": sentence, "format": self.fmt, "seconds": round(pcm.seconds, 3),
                         "audio": base64.b64encode(encode(pcm, self.fmt)).decode("ascii")}
            except Exception as exc:     # a sentence that cannot be spoken is told, the reply goes on
                log.warning("could not speak a sentence: %s", exc)
                event = {"index": index, "text": sentence, "error": str(exc)}
            with self._cond:
                self._done[index] = event
                self._cond.notify_all()

    def _ready(self) -> list[dict]:
        """The audio events spoken so far, in order (never blocks)."""
        out = []
        with self._cond:
            while self._next_out in self._done:
                out.append(self._done.pop(self._next_out))
                self._next_out += 1
        return out

    def _rest(self) -> Iterator[dict]:
        """After finish(): every audio event not handed out yet, in order, as each is spoken."""
        while True:
            with self._cond:
                while self._next_out not in self._done and self._next_out < self._count and not self._closed:
                    self._cond.wait()
                if self._closed or self._next_out >= self._count:
                    return
                event = self._done.pop(self._next_out)
                self._next_out += 1
            yield event

    def spoken(self, piece: str) -> list[dict]:
        """Feed a piece of the reply; the audio events ready now, in order."""
        self._feed(piece)
        return self._ready()

    def ending(self) -> Iterator[dict]:
        """The reply is complete: every audio event still to come, in order, as each is spoken."""
        self._finish()
        return self._rest()

    def close(self) -> None:
        """Stop speaking (the client left, or the reply was aborted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
