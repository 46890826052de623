"""Benchmarks: each prints a table of our figure, an anchor measured in the same run, and the ratio."""
