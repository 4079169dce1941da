"""Benchmarks (`make bench`): every figure against a bare baseline measured in the same run."""
