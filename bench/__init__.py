"""Benchmarks: ``make bench`` (``python -m bench``) and the contract they run against."""
