"""Benchmarks: separate commands, not part of `make test` (see bench/devices.py)."""
