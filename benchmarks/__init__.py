"""Benchmarks: scripts run as ``python benchmarks/<name>.py``; results go to ``benchmarks/results/``."""
