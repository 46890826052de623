"""Ordinary use that runs things at once: several `attest ask` on one ATTEST_HOME and one account (real CLI
processes on the session devnet), and two `disputer run` on one home (the daemons and the fast asserter are
test_chaos's).

Each ask signs its approval and its assertion under the per-account signing lock, so no nonce is taken twice
and no ask spends the allowance another approved for itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed, OptimisticOracleV3
from attest.chain.outbox import Outbox
from attest.chain.tx import Sender, SignedTx
from attest.cli import cli
from attest.connect import connect
from attest.flow.token import Token
from attest.ledger import Ledger
from attest.locks import SigningLock
from disputer.store import DisputerStore
from tests.conftest import LocalChain
from tests.test_chaos import Asserter, Daemon, log_lines, waiting_for

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
ASKS = 5


def _start_ask(i: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "attest", "ask", f"How often should the wick be trimmed{'?' * (i + 1)}", "--json"],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("standing", [False, True], ids=["exact", "standing"])
def test_five_asks_at_once_on_one_account_make_five_assertions(local_chain: LocalChain, standing: bool) -> None:
    network = "\n[networks.local]\nstanding_allowance = true\n" if standing else ""
    (local_chain.home / "config.toml").write_text('[llm]\nprovider = "extractive"\n' + network)
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
    # Every exact approval went to an assertion: nothing is left allowed once all five asserted.
    token = Token(local_chain.w3, local_chain.deployment.currency)
    if not standing:
        assert token.allowance(dev_account(1).address, oov3.address) == 0


def _alerts(log: Path) -> list[dict[str, object]]:
    return [line for line in log_lines(log) if line.get("alert")]


def test_a_second_daemon_on_one_home_is_refused_and_each_wrong_answer_disputed_once(
    local_chain: LocalChain, tmp_path: Path
) -> None:
    ctx = connect("local")
    asserter = Asserter(local_chain, ctx, dev_account(1), seed=16)
    asserter.fund(dev_account(2).address, 8)
    (local_chain.home / "config.toml").write_text(
        '[llm]\nprovider = "extractive"\n\n[disputer]\nsamples = 1\nattempts = 1\nbackfill_s = 86400\n'
        "confirmations = 0\npoll_interval_s = 0.2\nvote = false\nsettle = false\n"
    )
    first = Daemon(local_chain.home, tmp_path / "first.log", None)
    try:
        assert first.wait_started()
        second = Daemon(local_chain.home, tmp_path / "second.log", None)
        code = second.proc.wait(timeout=60)
        second._out.close()
        said = [line for line in second.log.read_text().splitlines() if line.strip()]
        assert code != 0
        assert len(said) == 1 and f"pid {first.proc.pid}" in said[0] and "Traceback" not in said[0], said
        planned = [asserter.plan(honest=i % 2 == 0) for i in range(6)]
        asserter.assert_batch(planned)
        deadline = time.monotonic() + 60
        with DisputerStore(local_chain.home / "disputer.sqlite") as store:
            while (waiting := waiting_for(store, asserter, ctx)) is not None:
                assert first.proc.poll() is None, first.log.read_text()[-3000:]
                assert time.monotonic() < deadline, waiting
                time.sleep(0.2)
    finally:
        code = first.stop()
    assert code == 0
    head = int(ctx.w3.eth.block_number)
    disputes = Counter(e.assertion_id for e in ctx.oov3.events_between(0, head) if isinstance(e, AssertionDisputed))
    assert disputes == Counter(aid for aid, honest in asserter.made.items() if not honest)
    assert _alerts(first.log) == []


class _Raced(Sender):
    """Signs under the home's lock, but another machine with the same key sends a transaction with the very
    nonce just signed, before these bytes reach the node."""

    def __init__(self, chain: LocalChain, elsewhere: Sender) -> None:
        account = elsewhere.account
        super().__init__(chain.w3, account, lock=SigningLock(chain.w3.eth.chain_id, account.address))
        self.elsewhere = elsewhere
        self.token = Token(chain.w3, chain.deployment.currency)
        self.spender = chain.deployment.oov3
        self.raced = 0

    def broadcast(self, signed: SignedTx) -> None:
        if not self.raced:
            self.raced += 1
            theirs = self.elsewhere.prepare(self.token.approve_call(self.spender, 7), "approve", nonce=signed.nonce)
            self.elsewhere.broadcast(theirs)
            self.elsewhere.confirm(theirs)
        super().broadcast(signed)


def test_a_nonce_another_machine_took_is_said_in_one_line_and_signed_anew(local_chain: LocalChain) -> None:
    account = dev_account(3)
    sender = _Raced(local_chain, Sender(local_chain.w3, account))
    said: list[str] = []
    with Ledger() as ledger:
        subject = ledger.begin(
            network="local", chain_id=local_chain.w3.eth.chain_id, account="dev:3", asserter=account.address,
            query="q", record=b"r", digest="0x" + "00" * 32, want_assert=True, plan={},
        )  # fmt: skip
        outbox = Outbox(ledger, sender, resign_lost=False, notice=said.append)
        call = sender.token.approve_call(sender.spender, 5)
        result = outbox.send(subject, "approve", lambda: call, "approve")
        assert result.mined, result.error
        assert [t.status for t in ledger.txs(subject)] == ["dropped", "mined"]
    assert len(said) == 1 and "went to another transaction" in said[0] and "\n" not in said[0]
    assert sender.token.allowance(account.address, sender.spender) == 5
