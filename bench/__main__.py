"""Run every benchmark: `python -m bench [--quick] [--write]` (`--write` updates docs/benchmarks.md, full runs only)."""

from __future__ import annotations

import sys

from bench import cid, gas, kb
from bench.common import write_report


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    tables = gas.run(quick=quick) + cid.run(quick=quick) + kb.run(quick=quick)
    for table in tables:
        print(table.markdown())
    if "--write" in argv and not quick:  # quick runs are smoke tests; docs/benchmarks.md holds full runs only
        write_report(tables)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main(sys.argv[1:])
