"""Benchmarks: each compares Kestrel against a baseline measured in the same run."""
