"""Schemathesis against /api/openapi.json, with a fast fake generator: no 5xx, responses as documented."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
import schemathesis
from conftest import test_settings
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

from companion.api.openapi import openapi_document
from companion.app import create_app
from companion.model.generation import GenerationRequest
from companion.services import build_services


class FakeGenerator:
    """Answers at once with a fixed reply: for HTTP-shape tests only."""

    path = "/models/fake.gguf"
    name = "fake.gguf"
    n_ctx = 2048
    n_ctx_reason = "set by [model] n_ctx"
    state = "ready"
    error = None
    template = "transcript"
    template_note = "a fake"

    def start(self) -> None: ...

    def wait_ready(self, timeout: float | None = None) -> bool:
        return True

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return list(text.encode("utf-8"))

    def detokenize(self, tokens: list[int]) -> str:
        return bytes(t % 256 for t in tokens).decode("utf-8", errors="replace")

    def prompt_tokens(self, request: GenerationRequest) -> int:
        return self.count_tokens(request.prompt or "\n".join(m["content"] for m in request.messages or []))

    def generate(self, request: GenerationRequest,
                 stop_event: threading.Event | None = None) -> Iterator[str]:
        yield from ["Hello", " from", " the", " fake", " model."]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, embedder):
    settings_ = test_settings(tmp_path_factory.mktemp("fuzz"), model={"allow_pull": False})   # no 502s from pulls
    services = build_services(settings_, generator=FakeGenerator(), embedder=embedder)
    app = create_app(settings_, services)
    yield app
    services.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)


ENDLESS = {("/api/events", "get")}   # a stream that never ends (tests/test_events.py reads it event by event)
OPERATIONS = [(path, method) for path, item in openapi_document()["paths"].items() for method in item
              if (path, method) not in ENDLESS]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_api_matches_its_document(api_schema, path, method):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=CHECKS)

    run()
