"""The dashboard's assertions list with 10,000 assertions in its index: server time per page (the request through
the ASGI app, rendering included), for the first page, filters and a deep page. Goal: < 300 ms.

The anchor, in the same run: the same pages over the same rows with the index's SQL indexes dropped (every page
a scan and a sort of the table).

    python -m bench ui_list [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed, AssertionMade, AssertionSettled, OracleEvent
from attest.claim import build_claim, rules_cid
from attest.ui.app import create_app
from attest.ui.index import AssertionIndex
from bench.common import Table, env_var, percentile

COUNT = 10_000
GOAL_MS = 300.0
ASSERTERS = [dev_account(i).address for i in range(1, 5)]
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def events(count: int) -> list[OracleEvent]:
    """`count` assertions by four asserters; every third disputed, every third settled (a tenth of them false)."""
    out: list[OracleEvent] = []
    rules = rules_cid()
    for n in range(1, count + 1):
        asserter = ASSERTERS[n % len(ASSERTERS)]
        digest = "0x" + n.to_bytes(32, "big").hex()
        aid, tx = n.to_bytes(32, "big"), (n + 10**9).to_bytes(32, "big")
        out.append(AssertionMade(
            assertion_id=aid, domain_id=aid, claim=build_claim(CID, digest, asserter, rules, f"Question {n}: why?"),
            asserter=asserter, callback_recipient=ASSERTERS[0], escalation_manager="0x" + "00" * 20, caller=asserter,
            expiration_time=2_000_000_000, currency=ASSERTERS[0], bond=200_000_000, identifier=b"A" * 32,
            tx_hash=tx, log_index=0, block_number=n,
        ))  # fmt: skip
        if n % 3 == 1:
            out.append(AssertionDisputed(aid, asserter, ASSERTERS[2], tx, 1, n))
        if n % 3 == 2:
            out.append(AssertionSettled(aid, asserter, False, n % 10 != 0, asserter, tx, 2, n))
    return out


PAGES = {
    "first page": "/",
    "ours": "/?ours=1",
    "status: disputed": "/?status=disputed",
    "batches (none)": "/?batch=1",
    "one asserter": f"/?asserter={ASSERTERS[1]}",
    "page 100 (keyset)": f"/?before={5_000 * 1_000_000}",
}


def timed(get: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        get()
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50)


def measure(home: Path, runs: int) -> dict[str, float]:
    with env_var("ATTEST_HOME", str(home)), TestClient(create_app("local", scan=False)) as client:
        out = {}
        for name, path in PAGES.items():
            response = client.get(path)
            assert response.status_code == 200, response.text[:500]
            out[name] = timed(lambda p=path: client.get(p), runs)  # type: ignore[misc]
        return out


def run(quick: bool = False) -> list[Table]:
    runs = 5 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        index = AssertionIndex(home / "ui" / "index-local.sqlite")
        index.reset("bench", 0)
        started = time.perf_counter()
        ours = {"0x" + n.to_bytes(32, "big").hex() for n in range(1, COUNT, 7)}
        index.apply(events(COUNT), {}, COUNT + 1, "0x00", ours)
        fill_s = time.perf_counter() - started
        indexed = measure(home, runs)
        names = index.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        for (name,) in names.fetchall():
            index.conn.execute(f"DROP INDEX {name}")
        index.close()
        plain = measure(home, runs)
    worst = max(indexed.values())
    rows = [
        (name, f"{plain[name]:.1f}", f"{indexed[name]:.1f}", f"{plain[name] / indexed[name]:.1f}x") for name in PAGES
    ]
    return [
        Table(
            f"Dashboard: the assertions list with {COUNT:,} assertions (ms per page, median of {runs})",
            ("page", "no SQL indexes (anchor)", "indexed (ours)", "speed-up"),
            rows,
            f"Server time: the request through the ASGI app (FastAPI TestClient, in process), SQL and Jinja2 rendering "
            f"of 50 rows and the count. Filling the index with {COUNT:,} scanned assertions took {fill_s:.2f} s. "
            f"Goal < {GOAL_MS:g} ms: slowest page {worst:.1f} ms, {'met' if worst < GOAL_MS else 'NOT met'}.",
        )
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
