"""Benchmark harness (``make bench``): never part of the test suite, never a timed assertion.

Each ``bench_*.py`` module here has ``async def main(args) -> list[Result]`` (or a plain function);
the harness runs them in one process, one after another, and prints a table. Compare figures measured
side by side in one run: the machine is shared and noisy.
"""
