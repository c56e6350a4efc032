"""Run benchmarks and print one JSON document: `make bench` or `python -m bench.run`.

    python -m bench.run [names...] [--quick] [--cores N] [--set NAME=VALUE ...]

Names: prompt_cache, prompt_notes, kv_restore, embedder, throughput, ttft, client_memory, overhead, recall_quality, locomo,
recall_tuning, recall_latency, load, group_switch, startup, voice, flash_attn, peer, soak (default:
all, in that order). Each result is
written to bench/results/<name>.json with the machine and the date; the ttft chart to
bench/results/ttft.png. --quick runs small versions (a smoke check) and writes to
bench/results/quick/ instead, so it never replaces the figures of a full run. --cores N runs on N of
the machine's CPUs only (the process and every daemon it starts are pinned to them, and "one thread
per core" then means N), to show how the costs scale on a small board; results go to
bench/results/cores-N/. --set passes an argument to the benchmarks' run() (peer's long_turns=0
leaves out its long chat); the result records it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import time
from pathlib import Path

from . import common  # noqa: F401  (sets the offline environment before anything loads)

RESULTS = Path(__file__).resolve().parent / "results"


BENCHMARKS = ("prompt_cache", "prompt_notes",
              "kv_restore", "embedder", "throughput", "ttft", "client_memory", "overhead", "recall_quality",
              "locomo", "recall_tuning", "recall_latency", "load", "group_switch", "startup", "voice", "flash_attn",
              "peer", "soak")
QUICK = {
    "prompt_cache": {"turns": 4},
    "prompt_notes": {"turns": 3},
    "kv_restore": {"rounds": 1, "history_tokens": 400},
    "embedder": {"rounds": 1, "queries": 10},
    "throughput": {"rounds": 1, "warmup": 0, "max_tokens": 32, "native": "cached"},
    "ttft": {"turns": 6},
    "client_memory": {"turns": 4},
    "overhead": {"memories": 300, "turns": 5, "warmup": 1},
    "recall_quality": {"quick": True},
    "locomo": {"quick": True},
    "recall_tuning": {"seeds": (1,), "days": 30, "conversations": ("conv-30",), "variants": ("lexical_weight=0",)},
    "recall_latency": {"quick": True},
    "load": {"quick": True},
    "group_switch": {"turns": 4},
    "startup": {"rounds": 1},
    "voice": {"rounds": 1, "reply_rounds": 2, "max_tokens": 40},
    "flash_attn": {"rounds": 1, "lengths": (4,), "max_tokens": 16},
    "peer": {"turns": 2, "long_turns": 4, "max_tokens": 16},
    "soak": {"turns": 20, "warmup": 5, "sample_every": 5},
}


def benchmark(name: str):
    """A benchmark's run function (imported only when it runs: some load models)."""
    return importlib.import_module(f"bench.{name}").run


def run_one(name: str, quick: bool, out: Path, chosen: dict | None = None) -> dict:
    options = {**(QUICK[name] if quick else {}), **(chosen or {})}
    quiet = common.wait_quiet(max_wait=30 if quick else 300)
    machine = common.machine()
    began = time.monotonic()
    started_at = common.now_iso()
    meter = common.CpuMeter()
    result = benchmark(name)(**options)
    foreign = meter.foreign()
    result = {"benchmark": name, **result}
    result["run"] = {"date": started_at, "seconds": round(time.monotonic() - began, 1),
                     "quick": quick, "options": options, "machine": machine,
                     "noise": {"wait_for_quiet_before": quiet,
                               "foreign_cpu_share_during": round(foreign, 3),
                               "note": "share of all cores used by other processes while it ran "
                                       "(the throughput daemon counts as ours only per round)"}}
    out.mkdir(parents=True, exist_ok=True)
    if name == "ttft":
        from .chart import draw_ttft
        result["run"]["chart"] = str(draw_ttft(result, out / "ttft.png").relative_to(RESULTS.parent.parent))
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: {name} done in {result['run']['seconds']} s -> {out / (name + '.json')}",
          file=sys.stderr, flush=True)
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small versions, a smoke check")
    parser.add_argument("--cores", type=int, default=0, help="run on this many CPUs only (pinned)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="options",
                        help="an argument of the benchmarks' run(), as a Python literal (written to the result), "
                             "e.g. --set long_turns=0 for peer without its long chat")
    args = parser.parse_args(argv)
    try:
        options = {name: ast.literal_eval(value) for name, _, value in (o.partition("=") for o in args.options)}
    except (ValueError, SyntaxError) as exc:
        sys.exit(f"--set takes NAME=VALUE with a Python literal value: {exc}")
    chosen = args.names or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    out = RESULTS / "quick" if args.quick else RESULTS
    if args.cores:
        cpus = sorted(os.sched_getaffinity(0))
        if not 0 < args.cores <= len(cpus):
            sys.exit(f"--cores must be between 1 and {len(cpus)}")
        os.sched_setaffinity(0, cpus[:args.cores])
        out = out / f"cores-{args.cores}"
    results = [run_one(name, args.quick, out, options) for name in chosen]
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
