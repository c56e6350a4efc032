"""Helpers shared by the benchmarks: statistics, the machine's description, noise.

The `companion serve` subprocess is in bench/daemon.py (the tests use it too)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from pathlib import Path

from companion.model.kv_states import common_prefix  # noqa: F401  (the benchmarks' too)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


# statistics ----------------------------------------------------------------------------------

def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    pos = (len(values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, digits)


def rounded(value, digits: int = 4):
    """Round floats (also inside lists and dicts) for readable JSON."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    return value


def alternating(i: int, arms: list[str]) -> list[str]:
    """The order of the arms in round i: rotated each round (A B, B A, ... or A B C, B C A, ...)."""
    if len(arms) == 2:
        return list(arms) if i % 2 == 0 else list(reversed(arms))
    k = i % len(arms)
    return arms[k:] + arms[:k]


# the machine ---------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine() -> dict:
    """What ran the benchmark, recorded in every result."""
    from companion.model.local import physical_cores, usable_cpus

    try:
        from importlib.metadata import version
        llama_version = version("llama_cpp_python")
    except Exception:  # pragma: no cover
        llama_version = None
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cpus": usable_cpus(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_version,
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# noise: CPU used by other processes while we measure -----------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _pid_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class CpuMeter:
    """How much of the machine other processes used between two readings (0..1).

    Ours: this process (all threads), its waited-for children, and the extra pids given
    (e.g. a daemon subprocess). Everything else busy on the machine counts as foreign.
    """

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        self.pids = pids
        self.cpus = os.cpu_count() or 1
        self._mark = self._read()

    def _read(self) -> tuple[float, float, float]:
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        own += sum(_pid_cpu_seconds(p) for p in self.pids)
        return time.monotonic(), _machine_busy_seconds(), own

    def foreign(self, reset: bool = True) -> float:
        """The share of all cores busy with other processes since the last reading."""
        now = self._read()
        wall, busy, own = (b - a for a, b in zip(self._mark, now))
        if reset:
            self._mark = now
        if wall <= 0:
            return 0.0
        return max(0.0, min(1.0, (busy - own) / (wall * self.cpus)))


def wait_quiet(threshold: float = 0.10, window: float = 3.0, max_wait: float = 300.0) -> dict:
    """Wait until other processes use under `threshold` of the machine over `window` seconds."""
    began = time.monotonic()
    meter = CpuMeter()
    while True:
        time.sleep(window)
        share = meter.foreign()
        waited = time.monotonic() - began
        if share < threshold or waited >= max_wait:
            return {"waited_s": round(waited, 1), "foreign_cpu_share": round(share, 3),
                    "quiet": share < threshold}


class Gate:
    """Before each timed step: wait (a little) until other processes leave the machine quiet.

    It cannot stop noise that starts mid-step (each step's own foreign share is recorded for
    that), but it keeps steps from starting while another heavy job runs.
    """

    def __init__(self, threshold: float = 0.10, window: float = 0.5, max_wait: float = 30.0) -> None:
        self.threshold, self.window, self.max_wait = threshold, window, max_wait
        self.waited = 0.0
        self.gave_up = 0

    def __call__(self) -> None:
        began = time.monotonic()
        meter = CpuMeter()
        while True:
            time.sleep(self.window)
            if meter.foreign() < self.threshold:
                break
            if time.monotonic() - began >= self.max_wait:
                self.gave_up += 1
                break
        self.waited += time.monotonic() - began

    def report(self) -> dict:
        return {"threshold": self.threshold, "window_s": self.window, "max_wait_s": self.max_wait,
                "waited_s_total": round(self.waited, 1), "steps_started_noisy": self.gave_up}


def timed(fn, sink: dict, key: str):
    """Wrap a bound method: add its milliseconds to sink[key] (sink is the turn being timed)."""
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink[key] = sink.get(key, 0.0) + (time.perf_counter() - began) * 1000
    return wrapper


def load_embedder():
    """The bundled embedder, loaded; returns it and the seconds loading took."""
    from companion.memory.embedder import Embedder, bundled_embedder

    embedder = Embedder(bundled_embedder())
    began = time.perf_counter()
    embedder.load()
    if embedder.state != "ready":
        raise RuntimeError(f"the bundled embedder did not load: {embedder.error}")
    return embedder, time.perf_counter() - began
