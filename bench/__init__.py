"""Benchmarks of the worker against a plain consumer and a textbook Faust app (`python -m bench.run`)."""
