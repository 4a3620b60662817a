"""Benchmarks with their baselines, run by hand, never in CI: `python -m bench.bench_relay`."""
