"""capgap's benchmark harness: `python -m bench` (see README.md, "Benchmarks", and BENCHMARKS.md)."""
