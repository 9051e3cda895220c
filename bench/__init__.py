"""Benchmark of nbcog against coglet 0.23.1: ``python -m bench`` (see README.md)."""
