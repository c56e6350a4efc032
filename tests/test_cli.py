"""The command line: doctor and reindex, on a real data dir."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import test_settings

from companion.cli import cli
from companion.lockfile import DataDirLock
from companion.services import build_services


@pytest.mark.model      # doctor loads the real model and embedder itself, not through the fixtures
@pytest.mark.embedder
def test_doctor_ok(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["doctor", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for check in ("database", "model", "embedder", "memory index"):
        assert f"ok    {check}" in result.output
    assert "Loading weights" not in result.output and "it/s" not in result.output   # a report, no progress bars


@pytest.mark.embedder
def test_doctor_fails_on_a_broken_model(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["doctor", "--data-dir", str(tmp_path), "--model", str(tmp_path / "no.gguf")])
    assert result.exit_code == 1
    assert "FAIL  model" in result.output and "not found" in result.output


def test_bad_config_is_reported(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 'x'\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "expected int" in result.output


def test_reindex_rebuilds_from_the_database(tmp_path, generator, embedder, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    services = build_services(test_settings(tmp_path), generator=generator, embedder=embedder)
    companion = services.store.active_companion_id()
    services.memory.add(companion, "one", "custom")
    services.store.add_memory(companion, "two, never indexed", "custom")
    services.close()
    result = CliRunner().invoke(cli, ["reindex", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "reindexed 2 memories" in result.output
    with DataDirLock(tmp_path):
        refused = CliRunner().invoke(cli, ["reindex", "--data-dir", str(tmp_path)])
    assert refused.exit_code != 0 and "stop the daemon" in refused.output


def test_export_and_import_from_the_command_line(tmp_path, generator, embedder, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    services = build_services(test_settings(tmp_path), generator=generator, embedder=embedder)
    chat_id = services.store.active_chat_id(services.store.active_companion_id())
    services.store.add_messages(chat_id, [(False, "I collect stamps."), (True, "Stamps tell stories!")])
    services.close()
    out = tmp_path / "chat.jsonl"
    result = CliRunner().invoke(cli, ["export", str(chat_id), "--format", "jsonl", "-o", str(out),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and "Stamps tell stories!" in lines[-1]
    result = CliRunner().invoke(cli, ["import", str(out), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "as chat" in result.output
    bad = CliRunner().invoke(cli, ["export", "999", "--data-dir", str(tmp_path)])
    assert bad.exit_code != 0 and "no chat with id 999" in bad.output


def test_export_never_creates_or_changes_a_database(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    mistyped = tmp_path / "no-such-dir"
    result = CliRunner().invoke(cli, ["export", "1", "--data-dir", str(mistyped)])
    assert result.exit_code != 0 and "no database at" in result.output
    assert not mistyped.exists()
