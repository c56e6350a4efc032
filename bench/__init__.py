"""Benchmarks: each prints JSON; compare A against B in one run, interleaved."""
