"""Fixtures: the real model and embedder loaded once per session; a fresh data dir per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from companion.app import create_app  # noqa: E402
from companion.config import Settings, load_settings  # noqa: E402
from companion.memory.embedder import Embedder, bundled_embedder
from companion.memory.recall import LongTermMemory  # noqa: E402
from companion.model.local import LlamaGenerator, resolve_model_path  # noqa: E402
from companion.services import Services, build_services  # noqa: E402
from companion.store import Store  # noqa: E402

CARDS = Path(__file__).resolve().parents[2] / "shared" / "cards"
TEST_GENERATION = {"temperature": 0.0, "max_tokens": 24, "seed": 1, "top_k": 1}


def test_settings(data_dir: Path, **sections: dict) -> Settings:
    """Settings for a test: a tmp data dir, deterministic short generation, no environment."""
    overrides: dict = {"data_dir": str(data_dir), "generation": dict(TEST_GENERATION),
                       "model": {"n_ctx": 2048,    # not chosen from this machine's free memory
                                 "hf_endpoint": "http://127.0.0.1:9"}}   # a pull never reaches the internet
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(env={}, overrides=overrides)


test_settings.__test__ = False  # not a test, despite the name


OPENED_MEMORIES: list[LongTermMemory] = []


def open_memory(folder: Path, embedder: Embedder, *, store: Store | None = None, chroma: str = "chroma",
                options=None) -> LongTermMemory:
    """A LongTermMemory on a test's folder (its own store unless one is given), closed after the test."""
    memory = LongTermMemory(store or Store(folder / "c.db"), embedder, folder / chroma, options)
    OPENED_MEMORIES.append(memory)
    return memory


@pytest.fixture(autouse=True)
def close_opened_memories():
    """Close what open_memory opened: the Chroma clients, then the stores."""
    yield
    while OPENED_MEMORIES:
        memory = OPENED_MEMORIES.pop()
        memory.close()
        memory.store.close()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once."""
    emb = Embedder(bundled_embedder())
    emb.load()
    assert emb.state == "ready", emb.error
    return emb


@pytest.fixture(scope="session")
def generator(tmp_path_factory) -> LlamaGenerator:
    """The bundled SmolLM2-135M-Instruct, loaded once."""
    settings = test_settings(tmp_path_factory.mktemp("model"))
    gen = LlamaGenerator(resolve_model_path(settings.model, Path(settings.data_dir)), settings.model)
    gen.load()
    assert gen.state == "ready", gen.error
    return gen


@pytest.fixture
def settings(tmp_path) -> Settings:
    return test_settings(tmp_path / "data")


@pytest.fixture
def services(settings, generator, embedder) -> Services:
    svc = build_services(settings, generator=generator, embedder=embedder)
    yield svc
    svc.close()


@pytest.fixture
def app(settings, services):
    app = create_app(settings, services)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


# --- the fast tier: `make test-fast` runs `pytest -m "not slow"` ------------------------------

# A test that uses one of these fixtures, directly or through another (services, app, client,
# the web page's daemon, ...), gets its marker: item.fixturenames is the whole closure.
FIXTURE_MARKERS = {"generator": "model", "embedder": "embedder", "browser": "browser"}
# A test with any of these is slow; tests that start `companion serve` or `chroma run` say so
# themselves with @pytest.mark.serve (no fixture shows it).
SLOW_MARKERS = ("model", "embedder", "browser", "serve")


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        if any(item.get_closest_marker(marker) for marker in SLOW_MARKERS):
            item.add_marker("slow")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
