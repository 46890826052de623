"""A reset devnet (same chain id, addresses and nonces, a new history): what the ledger made on the old chain is
marked orphaned and never blocks, rebroadcasts or settles anything on the new one. Real anvil, real CLI processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from attest.chain.outbox import CRASH_ENV
from tests.support.ports import free_port
from tests.test_devnet import Cli

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Cli]:
    """A home with its own devnet, to reset at will."""
    c = Cli(tmp_path / "home", free_port())
    yield c
    c.run("devnet", "down")


def ask(cli: Cli) -> dict[str, object]:
    return json.loads(cli.ok("ask", QUESTION, "--json"))


def disputer(cli: Cli) -> str:
    """One pass of the real daemon on this home; its log lines."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("disputer")), "run", "--once"],
        env=cli.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def block_number(cli: Cli) -> int:
    return int(Web3(Web3.HTTPProvider(f"http://127.0.0.1:{cli.port}")).eth.block_number)


def test_reset_twice_and_every_ask_succeeds_while_the_old_rows_say_their_chain_is_gone(home: Cli) -> None:
    cli = home
    cli.ok("kb", "add", str(KB_DOCS))
    cli.up()
    assert ask(cli)["assertion_id"]  # #1, asserted on the first chain
    disputer(cli)  # the disputer sees it there
    # #2 dies with its approval signed and never sent: bytes the new chains would accept, if anyone sent them.
    crashed = cli.run("ask", QUESTION, "--json", env={**cli.env, CRASH_ENV: "approve-signed"})
    assert crashed.returncode == 137, crashed.stderr
    for _reset in range(2):
        cli.ok("devnet", "reset", "--yes")
        cli.up()
        # The new chain signs the very same approve bytes as the first ask did: no longer a conflict.
        assert str(ask(cli)["assertion_id"]).startswith("0x")
    # The disputer retires what it saw on the first chain and watches the new one.
    assert "the chain was reset: 1 assertions" in disputer(cli)
    with sqlite3.connect(cli.home / "disputer.sqlite") as db:
        seen = [r[0] for r in db.execute("SELECT status FROM assertions ORDER BY seen_at")]
    assert seen[0] == "gone" and len(seen) == 2 and seen[1] != "gone"  # #1 on the first chain, #4 on this one
    before = block_number(cli)
    resumed = cli.ok("resume")
    assert "#2: its chain is gone" in resumed and block_number(cli) == before  # nothing rebroadcast
    assert "Nothing to resume" in cli.ok("resume")

    settled = cli.ok("settle", "--all").splitlines()
    assert settled[0].startswith("#1: skipped - its chain is gone")
    assert settled[1].startswith("#3: skipped - its chain is gone")  # asked on the chain of the first reset
    assert settled[2].startswith("#4: waiting")  # the live one
    status = cli.ok("status", "1")
    gone = [line for line in status.splitlines() if line.strip().startswith("on chain")]
    assert len(gone) == 1 and "its chain is gone" in gone[0] and "orphaned" in status.splitlines()[0]
    assert "Traceback" not in status + "".join(settled)

    with sqlite3.connect(cli.home / "ledger.sqlite") as db:
        rows = dict(db.execute("SELECT id, status FROM attestations").fetchall())
        assert rows == {1: "orphaned", 2: "orphaned", 3: "orphaned", 4: "asserted"}
        open_txs = db.execute("SELECT count(*) FROM txs WHERE status IN ('signed', 'sent')").fetchone()[0]
        assert open_txs == 0
        # The first ask of each chain signed the same approve bytes; each chain keeps its own row of them.
        same = db.execute("SELECT count(DISTINCT genesis_hash) FROM txs GROUP BY tx_hash ORDER BY 1 DESC").fetchone()
        assert same[0] == 3
