"""Ordinary use that runs things at once: several `attest ask` on one ATTEST_HOME and one account (real CLI
processes on the session devnet), and two `disputer run` on one home.

Each ask signs its approval and its assertion under the per-account signing lock, so no nonce is taken twice
and no ask spends the allowance another approved for itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from attest.accounts import dev_account
from attest.chain.oov3 import OptimisticOracleV3
from attest.cli import cli
from attest.flow.token import Token
from attest.ledger import Ledger
from tests.conftest import LocalChain

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
ASKS = 5


def _start_ask(i: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "attest", "ask", f"What does the guide say about chunking, take {i}?", "--json"],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_five_asks_at_once_on_one_account_make_five_assertions(local_chain: LocalChain) -> None:
    (local_chain.home / "config.toml").write_text('[llm]\nprovider = "extractive"\n')
    added = CliRunner().invoke(cli, ["kb", "add", str(KB_DOCS)], catch_exceptions=False)
    assert added.exit_code == 0, added.output
    procs = [_start_ask(i) for i in range(ASKS)]
    finished = [(p, *p.communicate(timeout=240)) for p in procs]
    for proc, out, err in finished:
        assert proc.returncode == 0 and "Traceback" not in err, f"rc {proc.returncode}\n{out}\n{err}"
    with Ledger() as ledger:
        rows = ledger.select()
        assert len(rows) == ASKS
        assert {a.status for a in rows} == {"asserted"}
        stuck = [(a.id, t.kind, t.status) for a in rows for t in ledger.txs(a.id) if t.status in ("signed", "sent")]
        assert stuck == []
        ids = {a.assertion_id for a in rows}
    assert len(ids) == ASKS and None not in ids
    oov3 = OptimisticOracleV3(local_chain.w3, local_chain.deployment.oov3)
    events = oov3.events_between(local_chain.deployment.block_number, local_chain.w3.eth.block_number)
    made = {"0x" + e.assertion_id.hex() for e in events if getattr(e, "domain_id", None) is not None}
    assert ids <= made
    # Every approval went to an assertion: nothing is left allowed once all five asserted.
    token = Token(local_chain.w3, local_chain.deployment.currency)
    assert token.allowance(dev_account(1).address, oov3.address) == 0
