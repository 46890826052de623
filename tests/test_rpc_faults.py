"""RPC faults: `attest ask`, `attest resume` and the disputer daemon talk to the devnet through a proxy that fails
a seeded share of calls (HTTP 5xx, JSON-RPC errors, slow answers, timeouts, dropped connections, and answers lost
after the node acted). They finish their work; the chain, read directly, shows no transaction sent twice, no
nonce gap and no transaction left pending."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed, AssertionMade, OptimisticOracleV3
from attest.chain.rpc import RPC_TIMEOUT_ENV, RetryingHTTPProvider, http_provider, rpc_origin
from attest.chain.tx import Sender
from attest.cli import cli
from attest.config import Config
from attest.connect import connect
from attest.devnet import Devnet
from attest.errors import AttestError, ChainError, ConfigError, RpcUnavailable
from attest.flow.ask import AskRequest, ask
from attest.flow.token import Token
from attest.ledger import Ledger
from disputer.config import DisputerConfig, load_attest_config
from disputer.daemon import Daemon, StepReport
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore, made_of
from disputer.wiring import build_daemon
from tests.conftest import LocalChain
from tests.support.faultproxy import FaultProxy

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
ASKS = 8
RATE = 0.2
SEED = 8
# A 1 s client timeout (ATTEST_RPC_TIMEOUT_S) and shorter waits than the proxy's defaults keep this in seconds.
CLIENT_TIMEOUT_S = "1.0"
SLOW_S = (0.2, 0.7)
HOLD_S = 1.3
HONEST = "Trim the wick every four hours so the flame stays bright and does not smoke the lens."
WRONG = "Paint the cottage orange each spring, and feed the seagulls sardines at noon."


@dataclass
class Proxied:
    chain: LocalChain
    proxy: FaultProxy
    asserter: ChecksumAddress
    nonce_before: int
    block_before: int

    def oov3(self) -> OptimisticOracleV3:
        """Direct to anvil: what the chain really holds, whatever the proxy did."""
        return OptimisticOracleV3(self.chain.w3, self.chain.deployment.oov3)

    def events(self) -> list[object]:
        return list(self.oov3().events_between(self.block_before + 1, int(self.chain.w3.eth.block_number)))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def point_devnet_at(home: Path, proxy: FaultProxy) -> None:
    """This test's ATTEST_HOME sees the session's anvil only through the proxy: `connect("local")` reads the
    node's port from `devnet/node.json` (ATTEST_RPC_URL applies to remote networks only)."""
    shared = (home / "devnet").resolve()
    node = json.loads((shared / "node.json").read_text())
    (home / "devnet").unlink()
    (home / "devnet").mkdir()
    (home / "devnet" / "deployment.json").write_text((shared / "deployment.json").read_text())
    (home / "devnet" / "node.json").write_text(json.dumps({**node, "port": proxy.port}))


@pytest.fixture
def proxied(local_chain: LocalChain, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxied]:
    monkeypatch.setenv(RPC_TIMEOUT_ENV, CLIENT_TIMEOUT_S)
    upstream = str(local_chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    with FaultProxy(upstream, rate=0.0, seed=SEED, slow_s=SLOW_S, hold_s=HOLD_S) as proxy:
        point_devnet_at(local_chain.home, proxy)
        assert Devnet().running_node() is not None and Devnet().web3().provider.endpoint_uri == proxy.url  # type: ignore[attr-defined]
        ok = run("kb", "add", str(KB_DOCS))
        assert ok.exit_code == 0, ok.output
        asserter = dev_account(1).address
        w3 = local_chain.w3
        yield Proxied(
            local_chain, proxy, asserter, int(w3.eth.get_transaction_count(asserter)), int(w3.eth.block_number)
        )


def resume_until_done(p: Proxied, limit: int = 20) -> int:
    """`attest resume` through the proxy until nothing is left; every failure on the way must name the fix."""
    for attempt in range(1, limit + 1):
        result = run("resume")
        if result.exit_code == 0:
            with Ledger() as ledger:
                if not ledger.unfinished() or all(a.status == "asserted" for a in ledger.unfinished()):
                    return attempt
            continue
        assert isinstance(result.exception, AttestError), result.exception
        assert "attest resume" in str(result.exception), result.exception
    raise AssertionError(f"attest resume did not finish in {limit} runs")


def assert_each_record_asserted_once(p: Proxied) -> tuple[int, int]:
    """Checked directly against anvil. Returns (attestations, transactions mined)."""
    w3 = p.chain.w3
    made = [e for e in p.events() if isinstance(e, AssertionMade)]
    with Ledger() as ledger:
        attestations = ledger.select()
        mined: list[str] = []
        for a in attestations:
            assert a.status == "asserted" and a.assertion_id is not None, (a.id, a.status)
            mine = [e for e in made if e.domain_id == bytes.fromhex(a.digest[2:])]
            assert len(mine) == 1, f"#{a.id}: {len(mine)} assertions of one record"
            assert "0x" + mine[0].assertion_id.hex() == a.assertion_id
            txs = ledger.txs(a.id)
            assert [t.kind for t in txs if t.status == "mined"].count("assert") == 1
            for t in txs:
                if t.status == "mined":
                    assert w3.eth.get_transaction_receipt(HexBytes(t.tx_hash))["status"] == 1
                    mined.append(t.tx_hash)
                else:
                    assert t.status == "dropped", (t.kind, t.status)  # never left in flight
                    with pytest.raises(Exception, match="not found"):
                        w3.eth.get_transaction_receipt(HexBytes(t.tx_hash))
    # Every assertion this account made in the test is one of the ledger's: no stray from a failed ask.
    assert len([e for e in made if e.asserter == p.asserter]) == len(attestations)
    assert len(set(mined)) == len(mined)
    # No gap, nothing stuck: the account's nonce moved by exactly the mined transactions, and the pool is empty.
    latest = int(w3.eth.get_transaction_count(p.asserter, "latest"))
    assert latest - p.nonce_before == len(mined)
    assert int(w3.eth.get_transaction_count(p.asserter, "pending")) == latest
    pool = w3.provider.make_request(RPCEndpoint("txpool_status"), [])["result"]
    assert int(pool["pending"], 16) == 0 and int(pool["queued"], 16) == 0
    return len(attestations), len(mined)


def test_asks_through_a_faulty_rpc_each_assert_exactly_once(proxied: Proxied) -> None:
    p = proxied
    p.proxy.rate = RATE
    # The nasty case is made certain, not left to the dice: the second ask's assertTruth (the fourth transaction)
    # reaches the chain, its answer is lost, and the RPC stays down for the rest of that ask.
    p.proxy.script("eth_sendRawTransaction", "lost_response", nth=4, then_down=True)
    started = time.monotonic()
    outcomes = []
    for i in range(ASKS):
        result = run("ask", "How often should the wick be trimmed" + "?" * (i + 1), "--json")
        p.proxy.down = False
        if result.exit_code == 0:
            outcomes.append("ok")
        else:
            assert isinstance(result.exception, AttestError), result.exception
            assert "attest resume" in str(result.exception)
            outcomes.append(type(result.exception).__name__)
    resumes = resume_until_done(p)
    attestations, mined = assert_each_record_asserted_once(p)
    assert p.proxy.fired()
    assert outcomes.count("ok") >= ASKS // 2  # retries absorb most faults; the rest is resume's job
    assert "RpcUnavailable" in outcomes  # the outage
    assert attestations >= outcomes.count("ok")
    injected = {k: v for k, v in p.proxy.counts.items() if v}
    assert len(injected) >= 6, injected  # nearly every kind of fault was met, not just one
    assert p.proxy.by_method[("eth_sendRawTransaction", "lost_response")] >= 1
    print(
        f"\nrpc faults: {p.proxy.calls} calls, {p.proxy.injected()} faults {dict(sorted(injected.items()))}; "
        f"asks {outcomes}; resume runs {resumes}; {attestations} attestations, {mined} txs mined, "
        f"0 duplicates, 0 nonce gaps; {time.monotonic() - started:.1f}s"
    )


def test_rpc_down_after_the_assertion_landed_then_resume_finds_it(proxied: Proxied) -> None:
    p = proxied
    # approve, then assertTruth: the node mines it, the answer is lost, and the RPC stays down.
    p.proxy.script("eth_sendRawTransaction", "lost_response", nth=2, then_down=True)
    result = run("ask", "How often should the wick be trimmed?", "--json")
    err = result.exception
    assert isinstance(err, RpcUnavailable), err
    assert f"the RPC at {p.proxy.url} did not answer" in str(err) and "`attest resume`" in str(err)
    with Ledger() as ledger:
        (a,) = ledger.select()
        assert a.status == "asserting" and [(t.kind, t.status) for t in ledger.txs(a.id)] == [
            ("approve", "mined"),
            ("assert", "signed"),
        ]
    assert len([e for e in p.events() if isinstance(e, AssertionMade)]) == 1  # it did land
    still_down = run("resume")
    assert isinstance(still_down.exception, RpcUnavailable)
    p.proxy.down = False
    assert run("resume").exit_code == 0
    assert assert_each_record_asserted_once(p) == (1, 2)


def test_an_approval_used_up_by_another_ask_is_renewed_on_resume(proxied: Proxied) -> None:
    p = proxied
    # The first ask's approve is mined; its assertTruth never leaves (dropped, then the RPC is down).
    p.proxy.script("eth_sendRawTransaction", "drop", nth=2, then_down=True)
    first = run("ask", "How often should the wick be trimmed?", "--json")
    assert isinstance(first.exception, RpcUnavailable)
    p.proxy.down = False
    # The second ask finds the first one's allowance, asserts with it, and takes the nonce the first had signed.
    second = run("ask", "When should the Fresnel lens be polished?", "--json")
    assert second.exit_code == 0, second.output
    assert run("resume").exit_code == 0, "resume must approve again: the allowance it had was used up"
    attestations, mined = assert_each_record_asserted_once(p)
    assert attestations == 2 and mined == 4  # approve + assert each; the first's unsent assert is dropped


def test_the_rpc_timeout_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RPC_TIMEOUT_ENV, "2.5")
    provider = http_provider("http://127.0.0.1:1", 20.0)
    assert provider.get_request_kwargs()["timeout"] == 2.5
    for bad in ("soon", "0", "-1", "nan", "1e9"):
        monkeypatch.setenv(RPC_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=RPC_TIMEOUT_ENV):
            http_provider("http://127.0.0.1:1", 20.0)


def test_a_node_that_stays_down_is_one_clear_error(proxied: Proxied) -> None:
    p = proxied
    p.proxy.down = True
    w3 = Web3(http_provider(p.proxy.url + "/v3/secret-key-in-path?key=abc", 1.0))
    started = time.monotonic()
    with pytest.raises(RpcUnavailable) as caught:
        w3.eth.get_balance(p.asserter)
    message = str(caught.value)
    assert message.startswith(f"the RPC at {p.proxy.url} did not answer eth_getBalance after 6 tries")
    assert "secret" not in message and "abc" not in message and "`attest resume`" in message
    assert p.proxy.counts["drop"] == 6 and time.monotonic() - started < 5
    # A node-signed send is never repeated: a retry would sign a second transaction.
    before = p.proxy.calls
    with pytest.raises(RpcUnavailable, match="after 1 try"):
        w3.provider.make_request(RPCEndpoint("eth_sendTransaction"), [{}])
    assert p.proxy.calls == before + 1


def test_transient_answers_are_retried_and_refusals_are_not(proxied: Proxied) -> None:
    p = proxied
    w3 = Web3(RetryingHTTPProvider(p.proxy.url, timeout=1.0, backoff_s=0.01))
    for fault in ("http_500", "http_502", "http_503", "rpc_error", "drop", "timeout", "lost_response", "slow"):
        p.proxy.script("eth_getBalance", fault)
        assert w3.eth.get_balance(p.asserter) == p.chain.w3.eth.get_balance(p.asserter)
    # One retry after each fault; a slow answer is an answer.
    assert p.proxy.fired() and p.proxy.by_method[("eth_getBalance", "ok")] == 7
    assert sum(p.proxy.counts.values()) == 8
    # A contract's revert is an answer, not a hiccup: asked once, raised at once.
    token = Token(w3, p.chain.deployment.currency)
    calls = p.proxy.by_method[("eth_call", "ok")]
    with pytest.raises(Exception, match="revert"):
        token.contract.functions.transferFrom(p.asserter, p.asserter, 10**30).call({"from": p.asserter})
    assert p.proxy.by_method[("eth_call", "ok")] == calls + 1
    assert rpc_origin("https://user:pw@rpc.example:8545/v3/KEY?x=1") == "https://rpc.example:8545"


def test_a_lost_send_answer_is_not_a_second_transaction(proxied: Proxied) -> None:
    p = proxied
    w3 = Web3(RetryingHTTPProvider(p.proxy.url, timeout=1.0, backoff_s=0.01))
    sender = Sender(w3, dev_account(3))
    token = Token(w3, p.chain.deployment.currency)
    nonce = int(p.chain.w3.eth.get_transaction_count(sender.address))
    signed = sender.prepare(token.approve_call(p.chain.deployment.oov3, 5), "approve")
    p.proxy.script("eth_sendRawTransaction", "lost_response")
    sender.broadcast(signed)  # lost, re-sent, "nonce too low": ours, mined
    assert sender.confirm(signed)["status"] == 1
    sender.broadcast(signed)  # once more, on purpose: still one transaction
    assert int(p.chain.w3.eth.get_transaction_count(sender.address)) == nonce + 1
    # Bytes whose nonce went to another transaction can never be mined: said so, not waited for.
    stale = sender.prepare(token.approve_call(p.chain.deployment.oov3, 6), "approve", nonce=nonce)
    with pytest.raises(ChainError, match="went to another transaction"):
        sender.broadcast(stale)
    assert sender.reconcile(stale) is None


# -- the disputer ---------------------------------------------------------------------------------------------
def disputer_txs(home: Path) -> list[tuple[bytes, str, str, bytes | None]]:
    with sqlite3.connect(home / "disputer.sqlite") as db:
        return list(db.execute("SELECT assertion_id, kind, status, tx_hash FROM txs ORDER BY id"))


def test_the_disputer_through_a_faulty_rpc_disputes_wrong_answers_exactly_once(proxied: Proxied) -> None:
    disputer_run(proxied, outage=False)


def test_the_disputer_finds_a_dispute_that_landed_while_the_rpc_went_down(proxied: Proxied) -> None:
    disputer_run(proxied, outage=True)


def disputer_run(p: Proxied, *, outage: bool) -> None:
    config = load_attest_config()
    answers = [HONEST, WRONG, HONEST, WRONG, WRONG]
    made = []
    for i, answer in enumerate(answers):  # asked through the proxy, no faults yet
        result = ask(AskRequest(f"How often should the wick be trimmed ({i})?", answer=answer), config=config)
        assert result.attestation.assertion_id is not None
        made.append((bytes.fromhex(result.attestation.assertion_id[2:]), answer))
    disputer = dev_account(2).address
    nonce_before = int(p.chain.w3.eth.get_transaction_count(disputer))
    ctx = connect("local", config=config)
    assert ctx.w3.provider.endpoint_uri == p.proxy.url  # type: ignore[attr-defined]
    calls_before, faults_before = p.proxy.calls, p.proxy.injected()
    p.proxy.rate = RATE
    if outage:
        # The first dispute lands, its answer is lost and the RPC goes down for the rest of that step.
        p.proxy.script("eth_sendRawTransaction", "lost_response", nth=2, then_down=True)
    else:
        p.proxy.script("eth_sendRawTransaction", "lost_response", nth=2)  # a dispute lands, its answer is lost
    # The offline grounding judge: deterministic, and it needs no second fake server.
    settings = {"samples": 1, "attempts": 1, "poll_interval_s": 0.05, "backfill_s": 86400}
    dconfig = DisputerConfig.model_validate({**settings, "vote": False, "settle": False})
    wrong = {aid for aid, answer in made if answer == WRONG}
    steps, errors = 0, []
    with DisputerStore(p.chain.home / "disputer.sqlite") as store:
        while steps < 40:
            steps += 1
            # A fresh daemon each time: a restart between faults must not send anything twice either.
            daemon: Daemon = build_daemon(ctx, store, dconfig, Config(), dev_account(2), judge=GroundingJudge())
            errors += asyncio.run(daemon.step()).errors
            p.proxy.down = False
            decided = all(store.decision(aid) is not None for aid, _ in made)
            disputed = {e.assertion_id for e in p.events() if isinstance(e, AssertionDisputed)}
            if decided and disputed >= wrong and not store.open_txs():
                break
    disputes = [e for e in p.events() if isinstance(e, AssertionDisputed)]
    for aid, answer in made:
        assert [d.assertion_id for d in disputes].count(aid) == (1 if answer == WRONG else 0)
    assert all(d.disputer == disputer for d in disputes)
    rows = disputer_txs(p.chain.home)
    mined = [r for r in rows if r[2] == "mined"]
    assert len({r[3] for r in mined}) == len(mined)
    assert sorted(r[0] for r in mined if r[1] == "dispute") == sorted(wrong)
    for row in mined:
        receipt = p.chain.w3.eth.get_transaction_receipt(HexBytes(row[3] or b""))
        assert receipt["status"] == 1 and receipt["from"] == disputer
    latest = int(p.chain.w3.eth.get_transaction_count(disputer, "latest"))
    assert latest - nonce_before == len(mined)
    assert int(p.chain.w3.eth.get_transaction_count(disputer, "pending")) == latest
    assert p.proxy.fired()
    print(
        f"\ndisputer under rpc faults: {steps} steps, {p.proxy.calls - calls_before} calls, "
        f"{p.proxy.injected() - faults_before} faults; {len(disputes)} disputes, {len(mined)} txs mined, "
        f"rows {[(r[1], r[2]) for r in rows]}; step errors {len(errors)}"
    )


def test_a_pipeline_cut_short_by_an_outage_leaves_no_nonce_gap(proxied: Proxied) -> None:
    """Three disputes decided together go out as one pipeline (approve, then three disputes with consecutive
    nonces). The node becomes unreachable at the second dispute's broadcast: the first dispute was sent, the
    second stays signed (an outage may have let it land), the third is released unsent (its bytes never left).
    The next step reconciles and re-signs: each assertion disputed once, every nonce used, none pending."""
    config = load_attest_config()
    made = []
    for i in range(3):
        result = ask(AskRequest(f"How often should the wick be trimmed ({i})?", answer=WRONG), config=config)
        assert result.attestation.assertion_id is not None
        made.append(bytes.fromhex(result.attestation.assertion_id[2:]))
    disputer = dev_account(2).address
    w3 = proxied.chain.w3
    nonce_before = int(w3.eth.get_transaction_count(disputer))
    ctx = connect("local", config=config)
    settings = {"samples": 1, "attempts": 1, "poll_interval_s": 0.05, "backfill_s": 86400}
    dconfig = DisputerConfig.model_validate({**settings, "vote": False, "settle": False})
    with DisputerStore(proxied.chain.home / "disputer.sqlite") as store:
        daemon = build_daemon(ctx, store, dconfig, Config(), dev_account(2), judge=GroundingJudge())
        daemon.watcher.poll()
        stored = [store.get(aid) for aid in made]
        batch = [(s, daemon.evaluator.evaluate(made_of(s))) for s in stored if s is not None]
        # Raw transactions in order: the approval, the first dispute, the second (the outage starts there).
        proxied.proxy.script("eth_sendRawTransaction", "drop", nth=3, then_down=True)
        decisions = daemon.handle_many(batch, StepReport())
        proxied.proxy.down = False
        assert [d.action for d in decisions] == ["dispute"] * 3, [d.reason for d in decisions]
        rows = [next(r for r in store.txs_for(aid) if r.kind == "dispute") for aid in made]
        assert [r.status for r in rows] == ["sent", "signed", "dropped"]
        assert [r.nonce for r in rows] == [nonce_before + 1, nonce_before + 2, nonce_before + 3]
        assert rows[2].error is not None and "not sent" in rows[2].error
        # On the node: the approval and the first dispute; nothing pending, so no transaction waits behind a gap.
        assert int(w3.eth.get_transaction_count(disputer, "pending")) == nonce_before + 2
        report = asyncio.run(daemon.step())
        assert report.errors == []
        assert store.open_txs() == []
        rows = [next(r for r in store.txs_for(aid) if r.kind == "dispute") for aid in made]
    assert [r.status for r in rows] == ["mined"] * 3
    disputes = [e for e in proxied.events() if isinstance(e, AssertionDisputed)]
    assert sorted(e.assertion_id for e in disputes) == sorted(made)
    assert all(e.disputer == disputer for e in disputes)
    latest = int(w3.eth.get_transaction_count(disputer, "latest"))
    assert latest == int(w3.eth.get_transaction_count(disputer, "pending")) == nonce_before + 4
