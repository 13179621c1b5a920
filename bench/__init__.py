"""Benchmarks (bench/README.md): never part of `make test`."""
