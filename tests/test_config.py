"""Settings: declared once, loaded in order, mirrored in config.example.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from companion.config import ConfigError, describe_settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_defaults(tmp_path):
    s = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 3000)
    assert s.data_dir == str(tmp_path.resolve())
    assert s.model.path == ""


def test_order_file_then_env_then_flags(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[server]\nport = 4000\nhost = "127.0.0.2"\n[generation]\ntemperature = 0.5\n')
    env = {"COMPANION_SERVER_PORT": "5000", "COMPANION_HOME": str(tmp_path / "home")}
    s = load_settings(config, env=env)
    assert (s.server.port, s.server.host, s.generation.temperature) == (5000, "127.0.0.2", 0.5)
    assert s.data_dir == str((tmp_path / "home").resolve())
    s = load_settings(config, env=env, overrides={"server": {"port": 6000}, "data_dir": str(tmp_path / "x")})
    assert s.server.port == 6000 and s.data_dir.endswith("x")


def test_platform_data_dir_when_nothing_given():
    s = load_settings(env={})
    assert "companion" in s.data_dir


@pytest.mark.parametrize("text, message", [
    ("[server]\nprot = 1\n", "unknown setting server.prot"),
    ("nonsense = 1\n", "unknown setting nonsense"),
    ("[server]\nport = 'abc'\n", "expected int"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[generation]\nstop = [1, 2]\n", "expected list"),
    ("[model]\nchat_template = 'x'\n", "chat_template"),
    ("[model]\nflash_attn = 'maybe'\n", "expected bool"),
    ("[voice]\nstt_model = '/no/such/folder'\n", "voice.stt_model"),
    ("[voice]\nlanguage = 'en-US'\n", "voice.language"),
    ("[voice]\nspeed = 9\n", "voice.speed"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={}, overrides={"data_dir": str(tmp_path)})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_example_file_is_generated_from_config_py():
    from companion.config import example_toml

    assert EXAMPLE.read_text() == example_toml(), "run: companion config-example > config.example.toml"


def test_example_documents_every_setting_with_its_default():
    example = tomllib.loads(EXAMPLE.read_text())
    text = EXAMPLE.read_text()
    for section, key, default, help_text in describe_settings():
        table = example.get(section, {}) if section else example
        if section == "" and key == "data_dir":
            assert "# data_dir = " in text and f"# {help_text}" in text
            continue
        assert key in table, f"config.example.toml lacks {section}.{key}"
        assert table[key] == default, f"{section}.{key}: example says {table[key]!r}, default is {default!r}"
        assert f"# {help_text}" in text, f"help of {section}.{key} missing"


def test_each_limit_is_declared_once_and_used_everywhere(tmp_path, client):
    """The bounds declared with a setting are what the config check, the API's validation and
    the OpenAPI document use."""
    from companion.api.openapi import openapi_document
    from companion.config import CompanionLimits, GenerationSettings, limits

    temperature = limits(GenerationSettings)["temperature"]
    with pytest.raises(ConfigError, match="generation.temperature must be between 0 and 5"):
        load_settings(env={}, overrides={"data_dir": str(tmp_path), "generation": {"temperature": 5.5}})
    refused = client.post("/api/prompt", json={"prompt": "hi", "temperature": temperature.le + 0.5})
    assert refused.status_code == 400 and "'temperature' must be between 0 and 5" in refused.get_data(as_text=True)
    spec = openapi_document()
    generation = spec["components"]["schemas"]["Generation"]["properties"]
    assert {k: generation["temperature"][k] for k in ("type", "minimum", "maximum")} == {
        "type": "number", "minimum": 0, "maximum": 5}
    assert generation["stop"]["maxItems"] == limits(GenerationSettings)["stop"].max_items
    long_term = limits(CompanionLimits)["long_term_mem"]
    for body in ("CompanionNew", "CompanionChange", "CompanionDataBody"):   # the request bodies carry the bounds
        assert spec["components"]["schemas"][body]["properties"]["long_term_mem"]["maximum"] == long_term.le
    too_many = client.post("/api/change/longTermMemory", json={"limit": long_term.le + 1})
    assert too_many.status_code == 400


def test_threads_follow_the_cpus_the_daemon_may_run_on():
    import os

    from companion.model.local import physical_cores, usable_cpus
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert usable_cpus() == 1 and physical_cores() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert physical_cores() <= usable_cpus() == len(before)


def test_every_declared_backend_name_has_a_backend_class():
    """config.py declares the names [model] backend takes; model/backends.py has a class for each."""
    from companion.config import MODEL_BACKENDS
    from companion.model.backends import BACKENDS

    assert sorted(BACKENDS) == sorted(MODEL_BACKENDS)
