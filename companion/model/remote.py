"""Generation on another machine: any OpenAI-compatible server ([model] backend = "openai").

The companion keeps its memory, prompt building and history at home; only the finished chat
messages travel, to `<base_url>/chat/completions` (raw prompts to `/completions`); the remote
server applies its own chat template. Tokens are estimated (the remote tokenizer is not at
hand), on the generous side.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Generator as Stream
from pathlib import Path
from typing import Iterator

from companion.config import ModelSettings
from companion.errors import BadGateway, GatewayTimeout
from companion.model.generation import GenerationRequest
from companion.model.loading import BackgroundLoaded

log = logging.getLogger(__name__)


class RemoteGenerator(BackgroundLoaded):
    """The Generator protocol over an OpenAI-compatible HTTP API."""

    kind = "remote model"
    uses_model_file = False

    @classmethod
    def from_settings(cls, model: ModelSettings, data_dir: Path) -> "RemoteGenerator":
        """The generator for [model] base_url (the data dir holds nothing it needs)."""
        return cls(model)

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings.base_url.rstrip("/"))
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.n_ctx = settings.n_ctx or 4096
        self.n_ctx_reason = ("set by [model] n_ctx" if settings.n_ctx else
                             "4096: the remote server's context is not known here; set [model] n_ctx")
        self.template = "remote"
        self.template_note = "the remote server applies its own chat template"
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

    def count_tokens(self, text: str) -> int:
        """An estimate: about three characters a token (real tokenizers do better)."""
        return len(text) // 3 + 1

    def prompt_tokens(self, request: GenerationRequest) -> int:
        """An estimate: the messages' texts and a few tokens a message for the template."""
        if request.messages is None:
            return self.count_tokens(request.prompt or "")
        return sum(self.count_tokens(m.get("content") or "") + 4 for m in request.messages)

    def generate(self, request: GenerationRequest,
                 stop_event: threading.Event | None = None) -> Stream[str, None, None]:
        """Stream the remote reply; stops between chunks once stop_event is set."""
        params = request.params
        body: dict = {"model": self.name, "stream": True, "max_tokens": params.max_tokens,
                      "temperature": params.temperature, "top_p": params.top_p}
        stops = request.stops()
        if stops:
            body["stop"] = stops[:4]   # OpenAI allows four stop strings
        if params.seed >= 0:
            body["seed"] = params.seed
        if request.messages is not None:
            path = "/chat/completions"     # role and content only: servers differ on the rest
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in request.messages]
        else:
            path, body["prompt"] = "/completions", request.prompt
            if request.suffix is not None:
                body["suffix"] = request.suffix
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
