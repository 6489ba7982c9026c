"""``python -m tests.bench [NAME ...] [--quick]``: run the benchmarks and print their results."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import pkgutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import tests.bench as package


@dataclass
class Result:
    bench: str
    name: str
    value: float
    unit: str
    note: str = ""


def discover() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(discover())})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results: list[Result] = []
    for name in args.names or discover():
        module = importlib.import_module(f"tests.bench.bench_{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        outcome = module.main(args)
        if inspect.isawaitable(outcome):
            outcome = asyncio.run(outcome)
        for row in outcome:
            results.append(Result(name, *row) if isinstance(row, tuple) else row)
    width = max((len(r.name) for r in results), default=10)
    for r in results:
        print(f"{r.bench:12} {r.name:{width}} {r.value:14.3f} {r.unit:10} {r.note}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
