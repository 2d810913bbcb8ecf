"""Reproducible benchmarks; each prints figures (ratios against a baseline of the same run)."""
