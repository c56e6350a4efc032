"""Run every benchmark and print one JSON document: `make bench` or `python -m bench.run`."""

from __future__ import annotations

import json
import sys

from . import prompt_cache

BENCHMARKS = {"prompt_cache": prompt_cache.run}


def main(names: list[str]) -> None:
    chosen = names or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    json.dump([BENCHMARKS[name]() for name in chosen], sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
