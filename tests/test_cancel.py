"""Ctrl-C during `attest ask`, a real SIGINT to a real process at each step (ATTEST_PAUSE_AT holds the process at
that step until the signal comes): before any transaction is out the attestation is cancelled and `attest resume`
leaves it; once one is out, resume finishes it; once the assertion is mined the ask ends normally with its result.
`attest resume ID` takes one up again, and `attest discard ID` cancels one, refused once a transaction is out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from attest.chain.outbox import CRASH_ENV, PAUSE_ENV
from attest.cli import cli
from attest.errors import LedgerError
from attest.flow.token import Token
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.test_ask import KB_DOCS, QUESTION, ok


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    ok("kb", "add", str(KB_DOCS))
    return local_chain


def interrupted_ask(step: str) -> subprocess.CompletedProcess[str]:
    """`attest ask --json` held at `step`, then sent SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "attest", "ask", QUESTION, "--json"],
        env={**os.environ, PAUSE_ENV: step},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"paused at {step}"):
            break
    else:
        pytest.fail(f"never paused at {step}: {''.join(seen)}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + err)


def statuses() -> list[tuple[str, list[tuple[str, str]]]]:
    with Ledger() as ledger:
        return [(a.status, [(t.kind, t.status) for t in ledger.txs(a.id)]) for a in ledger.select()]


def nonce(chain: LocalChain) -> int:
    with Ledger() as ledger:
        return 0 if not ledger.select() else chain.w3.eth.get_transaction_count(ledger.select()[0].asserter)


@pytest.mark.parametrize("step", ["retrieved", "answered"])
def test_ctrl_c_before_the_record_is_signed_writes_nothing(chain: LocalChain, step: str) -> None:
    done = interrupted_ask(step)
    assert done.returncode == 130 and done.stderr.strip().endswith("Interrupted.")
    assert statuses() == []
    assert "Nothing to resume" in ok("resume")


@pytest.mark.parametrize("step", ["signed", "pinned", "approve-signed"])
def test_ctrl_c_before_a_transaction_is_out_cancels_and_resume_leaves_it(chain: LocalChain, step: str) -> None:
    start = chain.w3.eth.block_number
    done = interrupted_ask(step)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 130 and last.startswith("Interrupted: attestation #1 cancelled"), done.stderr
    assert statuses() == [("cancelled", [])]
    with Ledger() as ledger:
        (cancelled,) = [s for s in ledger.steps(1) if s.step == "cancelled"]
    # The approval signed at the signal never left the process: its bytes are forgotten, its hash kept.
    assert len(cancelled.detail["never_sent"]) == (step == "approve-signed")
    assert "Nothing to resume" in ok("resume")
    assert chain.w3.eth.block_number == start  # nothing was sent
    # A change of mind: naming it takes it up again, and it is asserted once.
    assert "#1: asserted (asserted)" in ok("resume", "1")
    assert statuses()[0][0] == "asserted"
    assert ("assert", "mined") in statuses()[0][1]


def test_ctrl_c_once_a_transaction_is_out_leaves_it_to_resume(chain: LocalChain) -> None:
    done = interrupted_ask("approve-sent")
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 130 and "has a transaction out" in last and "attest resume 1" in last
    assert statuses() == [("asserting", [("approve", "sent")])]
    refused = CliRunner().invoke(cli, ["discard", "1"])
    assert refused.exit_code == 1 and "a transaction of it is out" in str(refused.exception)
    ok("resume")
    assert statuses() == [("asserted", [("approve", "mined"), ("assert", "mined")])]


@pytest.mark.parametrize("step", ["assert-mined", "asserted"])
def test_ctrl_c_after_the_assertion_is_mined_ends_with_the_result(chain: LocalChain, step: str) -> None:
    done = interrupted_ask(step)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    with Ledger() as ledger:
        (a,) = ledger.select()
    assert a.status == "asserted" and result["assertion_id"] == a.assertion_id is not None
    assert result["tx_hash"] == a.assert_tx and result["expiration"] == a.expiration and result["bond_display"]


def test_discard_cancels_what_a_crash_left_and_resume_leaves_it(chain: LocalChain) -> None:
    crashed = subprocess.run(
        [sys.executable, "-m", "attest", "ask", QUESTION, "--json"],
        env={**os.environ, CRASH_ENV: "pinned"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 137
    assert "#1: cancelled; nothing of it was sent" in ok("discard", "1")
    assert statuses() == [("cancelled", [])]
    assert "Nothing to resume" in ok("resume")
    # One that signed a transaction (its process died before it could say whether it was sent) may be out.
    crashed = subprocess.run(
        [sys.executable, "-m", "attest", "ask", QUESTION, "--json"],
        env={**os.environ, CRASH_ENV: "approve-signed"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 137
    refused = CliRunner().invoke(cli, ["discard", "2"])
    assert refused.exit_code == 1 and "a transaction of it is out" in str(refused.exception)
    finished = CliRunner().invoke(cli, ["discard", "1"])
    assert finished.exit_code == 0  # discarding again is no error
    # resume finishes #2 only, and #2's approval covered its own bond alone: the cancelled #1 asks for none.
    assert "#2: asserted" in ok("resume")
    assert [s for s, _txs in statuses()] == ["cancelled", "asserted"]
    with Ledger() as ledger:
        a = ledger.get(2)
    assert a.currency is not None and Token(chain.w3, a.currency).allowance(a.asserter, chain.deployment.oov3) == 0


def test_a_discard_from_another_terminal_stops_the_ask_that_was_pinning_it(attest_home: str) -> None:
    with Ledger() as ledger:
        n = ledger.begin(
            network="local", chain_id=31337, account="dev:1", asserter="0x" + "11" * 20, query="q",
            record=b"{}", digest="0x" + "ab" * 32, want_assert=True, plan={}, genesis_hash="0x" + "01" * 32,
        )  # fmt: skip
        assert "cancelled" in ok("discard", str(n))
        # The ask that was pinning it meanwhile moves its status on next: refused, so it never signs.
        with pytest.raises(LedgerError, match="discarded meanwhile"):
            ledger.update(n, "pinned", status="pinned", cid="bafy")
        assert ledger.get(n).status == "cancelled" and ledger.get(n).cid is None
