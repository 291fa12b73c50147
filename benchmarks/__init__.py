"""Benchmarks of mmd_keras (run by hand, not by pytest): ``python -m benchmarks.run_all --quick``."""
