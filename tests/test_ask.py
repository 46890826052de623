"""`attest ask` end to end on the devnet (real UMA contracts, real ledger, real local IPFS store), then settle,
dispute, resume after crashes at every step, list, status and export."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from web3 import Web3

from attest.accounts import dev_account
from attest.chain.artifacts import shipped
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.outbox import CRASH_ENV
from attest.chain.tx import Sender
from attest.cli import cli
from attest.flow.token import Token
from attest.ledger import Ledger
from attest.record.codec import decode_record
from tests.conftest import LocalChain
from tests.support.oov3 import dispute

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
EIPS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "eips"
needs_eips = pytest.mark.skipif(
    not EIPS.is_dir(), reason=f"the EIP corpus is not at {EIPS} (ethereum/EIPs EIPS/*.md); this test asks it"
)
QUESTION = "How often should the wick be trimmed?"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    ok("kb", "add", str(KB_DOCS))
    return local_chain


def ask_json(*extra: str) -> dict[str, object]:
    return json.loads(ok("ask", QUESTION, "--json", *extra))


def oov3(chain: LocalChain) -> OptimisticOracleV3:
    return OptimisticOracleV3(chain.w3, chain.deployment.oov3)


def dispute_and_resolve(chain: LocalChain, assertion_id: str, price: int) -> None:
    """Dispute as dev account 2, then answer the oracle's request as MockOracleAncillary's first pusher."""
    oracle = oov3(chain)
    disputer = Sender(chain.w3, dev_account(2))
    token = Token(chain.w3, chain.deployment.currency)
    raw_id = bytes.fromhex(assertion_id[2:])
    assertion = oracle.get_assertion(raw_id)
    disputer.transact(token.approve_call(oracle.address, assertion.bond), "approve")
    dispute(oracle, disputer, raw_id, disputer.address)
    ancillary = oracle.contract.functions.stampAssertion(raw_id).call()
    mock = chain.w3.eth.contract(address=chain.deployment.oracle, abi=shipped("MockOracleAncillary").abi)
    push = mock.functions.pushPrice(assertion.identifier, assertion.assertion_time, ancillary, price)
    disputer.transact(push, "pushPrice")


def test_ask_verify_settle_attested(chain: LocalChain) -> None:
    out = ask_json()
    assertion_id = str(out["assertion_id"])
    assert out["network"] == "local" and out["bond_display"] == "200 USDC"
    assert out["oracle_ui"] is None  # the UI does not list the devnet; the text output says so
    made = oov3(chain).get_assertion(bytes.fromhex(assertion_id[2:]))
    assert made.callback_recipient == chain.deployment.registry
    assert "0x" + made.domain_id.hex() == out["digest"]

    verified = run("verify", assertion_id)
    assert verified.exit_code == 0, verified.output
    assert "FAIL" not in verified.output.upper().replace("FAILURE", "")

    assert "waiting" in ok("settle", assertion_id)
    chain.advance(7300)
    assert "settled - attested" in ok("settle", "--all")
    assert oov3(chain).get_assertion(bytes.fromhex(assertion_id[2:])).settlement_resolution is True
    with Ledger() as ledger:
        a = ledger.find(assertion_id)
        assert (a.status, a.outcome) == ("settled", "attested")
        assert [t.kind for t in ledger.txs(a.id)] == ["approve", "assert", "settle"]
        assert all(t.status == "mined" for t in ledger.txs(a.id))
    registry = chain.w3.eth.contract(address=chain.deployment.registry, abi=shipped("AttestationRegistry").abi)
    assert registry.functions.isAttested(bytes.fromhex(str(out["digest"])[2:])).call() is True
    assert "already settled" in ok("settle", assertion_id)


def test_wrong_answer_disputed_and_rejected(chain: LocalChain) -> None:
    out = ask_json("--answer", "EIP-1559 burns the priority fee and gives the base fee to miners.")
    with Ledger() as ledger:
        record = decode_record(ledger.find(str(out["id"])).record)
    assert record.model.provider == "external" and record.prompt is None
    dispute_and_resolve(chain, str(out["assertion_id"]), 0)
    assert "settled - rejected" in ok("settle", str(out["id"]))
    status = json.loads(ok("status", str(out["id"]), "--json"))
    assert status["status"] == "settled" and status["outcome"] == "rejected"
    assert status["disputer"] == dev_account(2).address
    assert status["chain"]["settlement_resolution"] is False


def test_no_assert_pins_only(chain: LocalChain) -> None:
    block = chain.w3.eth.block_number
    out = ask_json("--no-assert")
    assert out["assertion_id"] is None and str(out["record_cid"]).startswith("bafk")
    assert chain.w3.eth.block_number == block  # nothing sent
    assert json.loads(ok("list", "--json"))[0]["status"] == "pinned"
    assert "Nothing to resume" in ok("resume")


def ask_split(*args: str) -> tuple[dict[str, object], str]:
    """`attest ask ARGS --json`: its JSON (stdout) and its warnings (stderr)."""
    result = CliRunner(mix_stderr=False).invoke(cli, ["ask", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout), result.stderr


@needs_eips
def test_no_bond_on_a_question_the_knowledge_base_does_not_answer(local_chain: LocalChain) -> None:
    ok("kb", "add", str(EIPS))
    block = local_chain.w3.eth.block_number
    nothing, warned = ask_split("xyzzy qwerty plugh")
    assert nothing["assertion_id"] is None and str(nothing["record_cid"]).startswith("bafk")
    assert nothing["not_asserted"] == "retrieval found no passage for the question"
    assert "not asserted" in warned and "--assert-anyway" in warned
    assert str(nothing["answer"]).startswith("The knowledge base does not answer this")
    # ERC-20 is a "moved to …" stub in the corpus: no other EIP's sentence about ERC-20 tokens answers it.
    stub, _ = ask_split("What is ERC-20?")
    assert str(stub["sources"][0]["source"]).endswith("/eip-20.md")  # type: ignore[index]
    assert stub["assertion_id"] is None and stub["citations"] == []
    assert stub["not_asserted"] == "the answer says the knowledge base does not answer the question"
    assert local_chain.w3.eth.block_number == block  # nothing sent
    assert [a["status"] for a in json.loads(ok("list", "--json"))] == ["pinned", "pinned"]
    assert "Nothing to resume" in ok("resume")
    shown = ok("ask", "xyzzy qwerty plugh")
    assert "no bond" in shown and "nothing was sent on chain" in shown


@needs_eips
def test_assert_anyway_bonds_a_non_answer_with_a_warning(local_chain: LocalChain) -> None:
    ok("kb", "add", str(EIPS))
    forced, warned = ask_split("xyzzy qwerty plugh", "--assert-anyway")
    assert forced["assertion_id"] is not None and forced["not_asserted"] is None
    assert "asserting anyway" in warned and "bond is likely lost" in warned
    answered, quiet = ask_split("What does EIP-1559 do with the base fee?")
    assert answered["assertion_id"] is not None and "asserting anyway" not in quiet


def test_bond_below_minimum_is_refused_before_anything_is_written(chain: LocalChain) -> None:
    result = CliRunner().invoke(cli, ["ask", QUESTION, "--bond", "199.99"])
    assert "below the oracle's minimum of 200 USDC" in str(result.exception)
    with Ledger() as ledger:
        assert ledger.select() == []


def test_bond_above_balance_is_refused_with_the_balance(chain: LocalChain) -> None:
    result = CliRunner().invoke(cli, ["ask", QUESTION, "--bond", "5000000"])
    assert "holds 1000000 USDC but the bond is 5000000 USDC" in str(result.exception)
    with Ledger() as ledger:
        assert ledger.select() == []


def test_empty_knowledge_base_is_one_clear_error(local_chain: LocalChain) -> None:
    result = CliRunner().invoke(cli, ["ask", QUESTION])
    assert "knowledge base is empty" in str(result.exception)


def test_question_that_is_not_utf8_is_refused_before_anything_is_written(chain: LocalChain) -> None:
    # What Python makes of `attest ask $'\\xff'`: argv bytes that are not UTF-8 become lone surrogates.
    result = CliRunner().invoke(cli, ["ask", "what is \udcff?"])
    assert "not valid UTF-8" in str(result.exception)
    with Ledger() as ledger:
        assert ledger.select() == []


def test_list_filters_and_export_formats(chain: LocalChain) -> None:
    first = ask_json()
    ask_json("--no-assert")
    listed = ok("list")
    assert "asserted" in listed and "pinned" in listed
    assert [r["id"] for r in json.loads(ok("list", "--status", "pinned", "--json"))] == [2]
    assert "unknown status 'nonsense'" in str(CliRunner().invoke(cli, ["list", "--status", "nonsense"]).exception)
    assert json.loads(ok("list", "--network", "sepolia", "--json")) == []

    jsonl = [json.loads(line) for line in ok("export", "--format", "jsonl").splitlines()]
    assert [r["assertion_id"] for r in jsonl] == [first["assertion_id"], None]
    assert jsonl[0]["query"] == QUESTION and jsonl[0]["context"][0]["text"]
    assert jsonl[0]["provider"] == "extractive"
    rows = list(csv.DictReader(io.StringIO(ok("export", "--format", "csv"))))
    assert rows[0]["record_cid"] == first["record_cid"] and json.loads(rows[0]["context"])
    tsv = ok("export", "--format", "tsv").splitlines()
    assert all(line.count("\t") == tsv[0].count("\t") for line in tsv)


# -- crash recovery --------------------------------------------------------------------------------------
CRASH_POINTS = (
    "signed", "pinned", "approve-signed", "approve-sent", "approve-mined", "assert-signed", "assert-sent",
    "assert-mined", "asserted",
)  # fmt: skip


def ask_process(crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CRASH_ENV: crash_at}
    return subprocess.run(
        [sys.executable, "-m", "attest", "ask", QUESTION, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_at_any_step_resumes_to_exactly_one_assertion(chain: LocalChain, crash_at: str) -> None:
    crashed = ask_process(crash_at)
    assert crashed.returncode == 137, crashed.stderr
    start = chain.w3.eth.block_number
    ok("resume")
    ok("resume")  # a second resume finds nothing left to do
    with Ledger() as ledger:
        (a,) = ledger.select()
        assert a.status == "asserted" and a.assertion_id is not None
        kinds = [(t.kind, t.status) for t in ledger.txs(a.id)]
    assert kinds == [("approve", "mined"), ("assert", "mined")]
    # Exactly one assertion for this record on chain, whatever the crash point.
    events = oov3(chain).events_between(chain.deployment.block_number, chain.w3.eth.block_number)
    mine = [e for e in events if getattr(e, "domain_id", None) == bytes.fromhex(a.digest[2:])]
    assert len(mine) == 1 and "0x" + mine[0].assertion_id.hex() == a.assertion_id
    token = Token(chain.w3, chain.deployment.currency)
    assert token.allowance(a.asserter, chain.deployment.oov3) == 0  # exact approval, fully used
    assert chain.w3.eth.block_number - start <= 2  # resume sent at most the missing approve and assert
    assert Web3.to_checksum_address(a.asserter) == dev_account(1).address
