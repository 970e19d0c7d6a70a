"""Benchmarks run by `magic8 bench`; one module per area, each with run(results_dir, quick)."""
