"""The soak benchmark (bench/soak.py) for a handful of turns: every figure is there, beside its target."""

from __future__ import annotations

import pytest

from bench import soak

pytestmark = pytest.mark.serve   # a `companion serve` subprocess


def test_a_short_soak_reports_every_figure_beside_its_target():
    result = soak.run(turns=6, warmup=2, sample_every=2, max_tokens=4)
    assert result["actions"]["prompt"] + result["actions"]["regenerate"] == 6
    assert [s["turn"] for s in result["samples"]] == [0, 2, 4, 6]
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in result["samples"])
    assert result["rss_mb"]["target_growth"] == 50 and isinstance(result["rss_mb"]["pass"], bool)
    assert {"pass", "after_warmup", "end"} <= set(result["fds"]) and {"pass", "end"} <= set(result["threads"])
    reads = result["reads_during_generation"]
    assert reads["target_p99_ms"] == 100 and reads["errors"] == 0 and reads["count"] >= 0
    assert all(n > 0 for n in result["events_received"])     # both live-event streams heard the turns
    assert result["exit_code_at_stop"] == 0
