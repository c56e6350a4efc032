"""The two embedder backends: torch (sentence-transformers) and numpy, on the bundled model.

Start-up (imports and load) and memory (RSS after loading and 20 queries) are measured in fresh
processes, alternating the backends; query latency and ingestion speed in one process with both
loaded, interleaved; agreement as the cosine between their vectors on 300 chat lines.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from .common import alternating, ratio, rounded
from .script import user_lines

PROBE = """
import json, resource, sys, time
began = time.perf_counter()
from companion.memory.embedder import make_embedder
from companion.config import MemorySettings
embedder = make_embedder(MemorySettings(embedder_backend=sys.argv[1]))
embedder.load()
loaded = time.perf_counter() - began
for n in range(20):
    embedder.embed([f"What did I tell you about my sister, number {n}?"])
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
print(json.dumps({"start_s": loaded, "rss_mb": rss / 2**20, "torch": "torch" in sys.modules}))
"""


def fresh_process(backend: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, backend], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rounds: int = 3, queries: int = 60) -> dict:
    import numpy as np

    from companion.config import MemorySettings
    from companion.memory.embedder import make_embedder

    backends = ["sentence-transformers", "numpy"]
    starts: dict[str, list[dict]] = {b: [] for b in backends}
    for i in range(rounds):
        for backend in alternating(i, backends):
            starts[backend].append(fresh_process(backend))

    embedders = {b: make_embedder(MemorySettings(embedder_backend=b)) for b in backends}
    for embedder in embedders.values():
        embedder.load()
    lines = user_lines(300, seed=9)
    vectors = {b: np.array(e.embed(lines)) for b, e in embedders.items()}
    cosines = (vectors["numpy"] * vectors["sentence-transformers"]).sum(1)
    query_ms: dict[str, list[float]] = {b: [] for b in backends}
    ingest: dict[str, list[float]] = {b: [] for b in backends}
    for i in range(queries):
        for backend in alternating(i, backends):
            began = time.perf_counter()
            embedders[backend].embed([lines[i]])
            query_ms[backend].append((time.perf_counter() - began) * 1000)
    for i in range(rounds):
        for backend in alternating(i, backends):
            began = time.perf_counter()
            embedders[backend].embed(lines[:128])
            ingest[backend].append(128 / (time.perf_counter() - began))

    def summary(backend: str) -> dict:
        return {"start_s_median": rounded(statistics.median(s["start_s"] for s in starts[backend]), 3),
                "rss_mb_median": rounded(statistics.median(s["rss_mb"] for s in starts[backend]), 1),
                "imports_torch": any(s["torch"] for s in starts[backend]),
                "query_ms_p50": rounded(statistics.median(query_ms[backend]), 2),
                "ingest_texts_per_s": rounded(statistics.median(ingest[backend]), 1)}

    result = {b: summary(b) for b in backends}
    torch_, light = result["sentence-transformers"], result["numpy"]
    return {
        "what": "embedder backends on the bundled all-MiniLM-L6-v2: fresh-process start-up and RSS, "
                "interleaved query latency and ingestion, vector agreement",
        "backends": result,
        "ratios_numpy_over_torch": {"start": ratio(light["start_s_median"], torch_["start_s_median"]),
                                    "rss": ratio(light["rss_mb_median"], torch_["rss_mb_median"]),
                                    "query_p50": ratio(light["query_ms_p50"], torch_["query_ms_p50"]),
                                    "ingest_rate": ratio(light["ingest_texts_per_s"], torch_["ingest_texts_per_s"])},
        "cosine_min": rounded(float(cosines.min()), 6),
        "cosine_median": rounded(float(np.median(cosines)), 6),
    }
