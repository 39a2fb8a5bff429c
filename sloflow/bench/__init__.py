"""Benchmarks run by `sloflow bench NAME`; each `main` returns its figures as a dict."""
