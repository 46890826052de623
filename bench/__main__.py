"""Run the benchmarks: `python -m bench [NAME ...] [--quick] [--write]`.

NAME picks benches (gas, batch_gas, anchor_gas, batch_build, batch_judge, cid, kb, kb_gas, answers, judge, ask,
rpc, disputer, judge_workers, ui_list, serve_load, serve_shared; all when none is named).
`--write` updates docs/benchmarks.md, full runs of every bench only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import (
    anchor_gas,
    answers,
    ask,
    batch_build,
    batch_gas,
    batch_judge,
    cid,
    disputer,
    gas,
    judge,
    judge_workers,
    kb,
    kb_gas,
    rpc,
    serve_load,
    serve_shared,
    ui_list,
)
from bench.common import Table, write_report

BENCHES: dict[str, Callable[..., list[Table]]] = {
    "gas": gas.run,
    "batch_gas": batch_gas.run,
    "anchor_gas": anchor_gas.run,
    "batch_build": batch_build.run,
    "batch_judge": batch_judge.run,
    "cid": cid.run,
    "kb": kb.run,
    "kb_gas": kb_gas.run,
    "answers": answers.run,
    "judge": judge.run,
    "judge_workers": judge_workers.run,
    "ask": ask.run,
    "rpc": rpc.run,
    "disputer": disputer.run,
    "ui_list": ui_list.run,
    "serve_load": serve_load.run,
    "serve_shared": serve_shared.run,
}


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    unknown = [n for n in names if n not in BENCHES]
    if unknown or "--help" in argv or "-h" in argv:
        print(__doc__)
        raise SystemExit(2 if unknown else 0)
    tables = [table for name in names or list(BENCHES) for table in BENCHES[name](quick=quick)]
    for table in tables:
        print(table.markdown())
    if (
        "--write" in argv and not quick and not names
    ):  # quick runs are smoke tests; docs/benchmarks.md holds full runs only
        write_report(tables)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main(sys.argv[1:])
