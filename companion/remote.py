"""Generation on another machine: any OpenAI-compatible server ([model] backend = "openai").

The companion keeps its memory, prompt building and history at home; only the finished chat
messages travel, to `<base_url>/chat/completions` (plain prompts to `/completions`). Tokens are
estimated (the remote tokenizer is not at hand), on the generous side.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from typing import Iterator

from .config import ModelSettings
from .errors import BadGateway, GatewayTimeout
from .llm import GenerationParams
from .loading import BackgroundLoaded

log = logging.getLogger(__name__)

CARRIER = "companion-chat-messages:"   # marks a rendered prompt that carries chat messages


class RemoteGenerator(BackgroundLoaded):
    """The Generator protocol over an OpenAI-compatible HTTP API."""

    kind = "remote model"

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings.base_url.rstrip("/"))
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.n_ctx = settings.n_ctx
        self.template = "remote"
        self.name = settings.model

    def _request(self, path: str, body: dict | None = None, timeout: float = 30):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method="POST" if body is not None else "GET")
        return urllib.request.urlopen(request, timeout=timeout)

    def _open(self) -> None:
        with self._request("/models") as response:
            models = json.load(response).get("data") or []
        if not self.name:
            if not models:
                raise RuntimeError(f"{self.base_url}/models lists no model")
            self.name = models[0]["id"]

    def render(self, messages: list[dict], char: str, user: str) -> tuple[str, list[str]]:
        """The messages themselves travel; the remote server applies its chat template."""
        return CARRIER + json.dumps(messages, ensure_ascii=False), [f"\n{user}:"]

    def count_tokens(self, text: str) -> int:
        """An estimate: about three characters a token (real tokenizers do better)."""
        return len(text) // 3 + 1

    def generate(self, prompt: str, params: GenerationParams,
                 stop_event: threading.Event | None = None) -> Iterator[str]:
        """Stream the remote reply; stops between chunks once stop_event is set."""
        body: dict = {"model": self.name, "stream": True, "max_tokens": params.max_tokens,
                      "temperature": params.temperature, "top_p": params.top_p}
        if params.stop:
            body["stop"] = params.stop[:4]   # OpenAI allows four stop strings
        if params.seed >= 0:
            body["seed"] = params.seed
        if prompt.startswith(CARRIER):
            path, body["messages"] = "/chat/completions", json.loads(prompt[len(CARRIER):])
        else:
            path, body["prompt"] = "/completions", prompt
        try:
            response = self._request(path, body, timeout=self.settings.remote_timeout)
        except urllib.error.HTTPError as exc:
            raise BadGateway(f"the remote model answered {exc.code}: {exc.read()[:300]!r}") from None
        except (TimeoutError, socket.timeout):
            raise GatewayTimeout(f"the remote model did not answer within {self.settings.remote_timeout:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BadGateway(f"the remote model cannot be reached: {exc}") from None
        with response:
            try:
                yield from self._pieces(response, stop_event)
            except (TimeoutError, socket.timeout):
                raise GatewayTimeout(
                    f"the remote model stopped answering for {self.settings.remote_timeout:g} s") from None
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise BadGateway(f"the remote model answered something that is not an OpenAI stream: {exc}") from None

    @staticmethod
    def _pieces(response, stop_event: threading.Event | None) -> Iterator[str]:
        for raw in response:
            if stop_event is not None and stop_event.is_set():
                return
            line = raw.decode("utf-8", errors="replace").strip()
            if not line or line.startswith((":", "event:", "id:", "retry:")):
                continue
            if not line.startswith("data:"):
                raise ValueError(f"unexpected line {line[:80]!r}")
            data = line[5:].strip()
            if data == "[DONE]":
                return
            choice = (json.loads(data).get("choices") or [{}])[0]
            text = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
            if text:
                yield text
