"""Benchmarks: each prints our figure next to a reference measured in the same invocation (BRIEF §6).

Run one with ``./dev bench NAME`` (``python -m bench.NAME``); every bench takes ``--quick`` for a short smoke run,
stops by itself, uses loopback only, and writes its raw results to ``bench/results/<name>-<timestamp>.json``
(git-ignored). Speed targets live here, never in timed tests. See ``bench/README.md``.
"""
