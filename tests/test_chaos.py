"""Crash chaos: a real `disputer run` subprocess killed with SIGKILL at random moments (seeded) and restarted, while
real signed records pinned to the test's local store keep being asserted on the devnet. At the end every assertion
of ours has exactly one decision, every wrong one is disputed exactly once (and no honest one), every transaction
the disputer sent is in its outbox, and no outbox row is left open.

The judge is the offline grounding judge: deterministic per record. Honest answers are sentences of the documents
they cite; wrong ones share no content word with them. `ATTEST_CHAOS_LONG=1` runs the long variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxData

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import AssertionDisputed, AssertionMade
from attest.claim import build_claim, rules_bytes
from attest.connect import ChainContext, connect
from attest.ipfs.local import LocalStore
from attest.networks import ASSERT_TRUTH2
from attest.record.canonical import digest_hex
from attest.record.codec import encode_record
from attest.record.model import validate_record
from attest.record.signing import sign_record
from disputer.store import DisputerStore
from tests.conftest import LocalChain

REPO = Path(__file__).resolve().parent.parent
DISPUTER = REPO / ".venv" / "bin" / "disputer"
LIVENESS = 7200
MAX_UINT256 = 2**256 - 1

# Short documents about distinct things; an honest answer is one of their sentences, a wrong one shares no word.
DOCUMENTS = [
    "The lighthouse keeper trims the lamp wick every four hours. A trimmed wick keeps the flame bright and clean.",
    "Bees store nectar in wax cells and fan it with their wings. The water evaporates and the nectar becomes honey.",
    "Granite forms when magma cools slowly deep underground. Its large crystals show how slowly it cooled.",
    "A violin bow is strung with horsehair rubbed with rosin. The rosin lets the hair grip and vibrate the strings.",
    "Sourdough rises because wild yeast ferments the flour. Lactic bacteria in the starter give the bread its tang.",
    "Glaciers carve valleys into a U shape as they creep downhill. Rivers cut narrower valleys shaped like a V.",
]
WRONG_ANSWERS = [
    "Penguins migrate across deserts carrying umbrellas every autumn.",
    "Submarines photosynthesize using chlorophyll painted onto periscopes.",
    "Volcanoes hibernate during winter beneath quilted blankets of marmalade.",
]


@dataclass(frozen=True)
class Planned:
    """One assertion we make: its signed claim and whether its answer is honest."""

    claim: bytes
    digest: bytes
    honest: bool


class Asserter:
    """Makes real llm-attest assertions fast: signed records pinned to the local store, assertTruth sent as raw
    transactions with nonces counted here (each mined in its own block by the automining devnet)."""

    def __init__(self, chain: LocalChain, ctx: ChainContext, account: LocalAccount, seed: int) -> None:
        self.chain = chain
        self.ctx = ctx
        self.account = account
        self.rng = random.Random(seed)
        self.store = LocalStore()
        self.rules = str(self.store.put(rules_bytes()))
        self.docs = [(text, str(self.store.put(text.encode()))) for text in DOCUMENTS]
        self.currency: Contract = ctx.w3.eth.contract(
            address=Web3.to_checksum_address(chain.deployment.currency), abi=uma("TestnetERC20").abi
        )
        self.bond = ctx.oov3.minimum_bond(chain.deployment.currency)
        self.nonce = int(ctx.w3.eth.get_transaction_count(account.address, "pending"))
        self.first_block = int(ctx.w3.eth.block_number) + 1
        self.made: dict[bytes, bool] = {}  # assertion id -> honest
        self.count = 0
        self._lock = threading.Lock()

    def fund(self, disputer: str, n: int) -> None:
        """Enough bond tokens for `n` assertions and as many disputes, and a standing allowance for the asserter."""
        for who in (self.account.address, disputer):
            self._send(self.currency.functions.allocateTo(Web3.to_checksum_address(who), (n + 10) * self.bond))
        self._send(self.currency.functions.approve(self.ctx.oov3.address, MAX_UINT256))

    def plan(self, honest: bool) -> Planned:
        self.count += 1
        text, cid = self.docs[self.count % len(self.docs)]
        sentence = text.split(". ")[self.count % 2].rstrip(".") + "."
        answer = sentence if honest else self.rng.choice(WRONG_ANSWERS)
        query = f"Question {self.count}: what does the passage about {text.split()[1]} say?"
        chunk = {
            "source": f"doc-{self.docs.index((text, cid))}.txt",
            "doc_cid": cid,
            "chunk_index": 0,
            "text": text,
            "sha256": _sha256(text),
        }
        record = validate_record(
            {
                "schema": "llm-attest/record/v1",
                "query": query,
                "answer": answer,
                "context": [chunk],
                "corpus": None,
                "model": {
                    "provider": "external",
                    "requested_model": "chaos",
                    "returned_model": None,
                    "system_fingerprint": None,
                    "response_id": None,
                    "params": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
                    "usage": None,
                    "license": None,
                    "sdk": None,
                },
                "prompt": None,
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "asserter": self.account.address,
            }
        )
        signed = sign_record(record, self.account)
        data = encode_record(signed)
        digest = digest_hex(signed)
        record_cid = str(self.store.put(data))
        claim = build_claim(record_cid, digest, self.account.address, self.rules, query)
        return Planned(claim, bytes.fromhex(digest[2:]), honest)

    def assert_batch(self, planned: list[Planned]) -> list[AssertionMade]:
        hashes = []
        for p in planned:
            call = self.ctx.oov3.assert_truth_call(
                claim=p.claim, asserter=self.account.address, callback_recipient=self.ctx.require_registry(),
                liveness=LIVENESS, currency=self.chain.deployment.currency, bond=self.bond,
                identifier=ASSERT_TRUTH2, domain_id=p.digest,
            )  # fmt: skip
            hashes.append((self._send(call, gas=400_000), p))
        made = []
        for tx_hash, p in hashes:
            receipt = self.ctx.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=30)
            assert receipt["status"] == 1
            event = self.ctx.oov3.made_in(receipt)
            with self._lock:
                self.made[event.assertion_id] = p.honest
            made.append(event)
        return made

    def _send(self, call: object, gas: int = 200_000) -> bytes:
        tx = call.build_transaction(  # type: ignore[attr-defined]
            {"from": self.account.address, "nonce": self.nonce, "gas": gas, "chainId": self.ctx.chain_id}
        )
        self.nonce += 1
        signed = self.account.sign_transaction(tx)
        return bytes(self.ctx.w3.eth.send_raw_transaction(signed.raw_transaction))


def txs_from(w3: Web3, address: str, since: int) -> list[bytes]:
    """Hashes of the transactions `address` sent in blocks `since`..head, in chain order."""
    found = []
    for number in range(since, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            data = cast(TxData, tx)
            if data["from"] == address:
                found.append(bytes(data["hash"]))
    return found


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- the run ---------------------------------------------------------------------------------------------------
# The daemon of every chaos run: the offline judge, one sample, a fast poll, no votes or settling.
CHAOS_CONFIG = (
    '[llm]\nprovider = "extractive"\n\n[disputer]\nsamples = 1\nattempts = 1\nbackfill_s = 86400\n'
    "confirmations = 0\npoll_interval_s = 0.2\nvote = false\nsettle = false\nconcurrency = 8\n"
)
CRASH_POINTS = ("dispute-signed", "dispute-sent", "approve-signed", "approve-sent")


@dataclass
class Chaos:
    total: int  # assertions made
    kills: int  # SIGKILLs at random moments, at least
    seed: int
    crash_points: tuple[str, ...] = CRASH_POINTS  # ATTEST_CRASH_AT lives, besides the kills
    wrong_share: float = 0.3


@dataclass
class Life:
    crash_at: str | None
    log: Path
    exit_code: int | None = None
    killed: bool = False


@dataclass
class Outcome:
    lives: list[Life] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        return sum(life.killed for life in self.lives)

    @property
    def crash_points_hit(self) -> list[str]:
        return [str(life.crash_at) for life in self.lives if life.exit_code == 137]


class Daemon:
    """One `disputer run` subprocess (the console script) with its JSON log in a file."""

    def __init__(self, home: Path, log: Path, crash_at: str | None, args: Sequence[str] = ("run",)) -> None:
        env = {**os.environ, "ATTEST_HOME": str(home)}
        env.pop("ATTEST_CRASH_AT", None)
        if crash_at is not None:
            env["ATTEST_CRASH_AT"] = crash_at
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [str(DISPUTER), *args], env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out
        )

    def wait_started(self, timeout_s: float = 30.0) -> bool:
        """True once the daemon logged its start; False when it exited first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if '"disputer started"' in self.log.read_text(errors="replace"):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        raise AssertionError(f"disputer did not start within {timeout_s}s:\n{self.log.read_text()[-2000:]}")

    def kill(self) -> bool:
        """SIGKILL; True when it was still running (a crash point may have ended it first)."""
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()
        return alive

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._out.close()
        return code


def log_lines(path: Path) -> list[dict[str, object]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):  # a killed process may cut its last line short
                found.append(json.loads(line))
    return found


def run_chaos(chain: LocalChain, plan: Chaos, logs: Path) -> tuple[Asserter, Outcome]:
    ctx = connect("local")
    asserter = Asserter(chain, ctx, dev_account(1), plan.seed)
    asserter.fund(dev_account(2).address, plan.total)
    rng = random.Random(plan.seed)
    planned = [asserter.plan(rng.random() >= plan.wrong_share) for _ in range(plan.total)]
    (chain.home / "config.toml").write_text(CHAOS_CONFIG)
    # Every life but the last brings a batch of new assertions, sent while that life runs.
    lives_planned = plan.kills + len(plan.crash_points)
    batches = [planned[i::lives_planned] for i in range(lives_planned)]
    outcome = Outcome()
    started = time.monotonic()
    for i, batch in enumerate(batches):
        crash_at = plan.crash_points[i // 2] if i % 2 == 1 and i // 2 < len(plan.crash_points) else None
        life = Life(crash_at, logs / f"life-{i:03d}.log")
        daemon = Daemon(chain.home, life.log, crash_at)
        feeder = threading.Thread(target=asserter.assert_batch, args=(batch,))
        feeder.start()
        if daemon.wait_started():
            if crash_at is None:
                time.sleep(rng.uniform(0.3, 2.0))
            else:
                # A crash point ends the process on its own at the first transaction of that kind.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.proc.wait(timeout=15)
        life.killed = daemon.kill()
        life.exit_code = daemon.proc.returncode
        feeder.join()
        outcome.lives.append(life)
    # The last life runs undisturbed until everything is decided and no outbox row is open, then stops cleanly.
    final = Life(None, logs / "life-final.log")
    daemon = Daemon(chain.home, final.log, None)
    deadline = time.monotonic() + 60
    try:
        # When the killed lives already decided everything, the wait below ends at once; a SIGTERM sent before
        # the daemon has installed its handlers would then end it as the signal's own exit (-15), not with 0.
        assert daemon.wait_started(), final.log.read_text()[-3000:]
        with DisputerStore(chain.home / "disputer.sqlite") as store:
            while (waiting := waiting_for(store, asserter, ctx)) is not None:
                assert daemon.proc.poll() is None, final.log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"the disputer did not catch up within 60 s: {waiting}"
                time.sleep(0.2)
    except BaseException:
        daemon.kill()
        raise
    final.exit_code = daemon.stop()
    outcome.lives.append(final)
    outcome.seconds = time.monotonic() - started
    return asserter, outcome


def waiting_for(store: DisputerStore, asserter: Asserter, ctx: ChainContext) -> str | None:
    """What the disputer has still to do, or None when it is done."""
    if rows := store.open_txs():
        return f"open outbox rows: {[(r.kind, r.status, '0x' + r.subject.hex()) for r in rows[:5]]}"
    for aid, honest in asserter.made.items():
        decision = store.decision(aid)
        if decision is None:
            return f"no decision for 0x{aid.hex()}"
        if not honest and not ctx.oov3.get_assertion(aid).disputed:
            return f"0x{aid.hex()} not disputed; its rows: {[(r.kind, r.status, r.error) for r in store.txs_for(aid)]}"
    return None


def check(chain: LocalChain, asserter: Asserter, outcome: Outcome) -> dict[str, int]:
    ctx = connect("local")
    disputer = dev_account(2).address
    made = asserter.made
    wrong = {aid for aid, honest in made.items() if not honest}
    with DisputerStore(chain.home / "disputer.sqlite") as store:
        ours = {a.assertion_id for a in store.assertions(ctx.chain_id, ours=True)}
        assert ours == set(made), "missed or extra assertions"
        for aid, honest in made.items():
            decision = store.decision(aid)
            assert decision is not None, f"0x{aid.hex()} was never decided"
            assert decision.action == ("none" if honest else "dispute"), (aid.hex(), decision)
        assert store.open_txs() == []
        summary = store.status_summary(ctx.chain_id)
        assert sum(summary["decisions"].values()) == len(made)
    # On chain: one dispute per wrong answer, by us, and none of an honest one.
    head = int(ctx.w3.eth.block_number)
    disputes = [e for e in ctx.oov3.events_between(0, head) if isinstance(e, AssertionDisputed)]
    per_id = Counter(e.assertion_id for e in disputes)
    assert max(per_id.values(), default=0) <= 1
    assert set(per_id) == wrong
    assert {e.disputer for e in disputes} <= {disputer}
    # Every transaction the disputer's account sent is an outbox row that knows it (nothing sent twice or blind).
    with sqlite3.connect(chain.home / "disputer.sqlite") as db:
        rows = db.execute("SELECT kind, status, tx_hash FROM txs").fetchall()
    landed = {bytes(h) for _kind, status, h in rows if status == "mined" or (status == "failed" and h is not None)}
    sent = set(txs_from(ctx.w3, disputer, asserter.first_block))
    # A row reopened because another dispute spent its approval keeps only its latest hash: those earlier
    # approvals are the only transactions allowed outside the outbox, one per reopening logged.
    lines = [line for life in outcome.lives for line in log_lines(life.log)]
    reapproved = sum(
        1 for line in lines if str(line["msg"]).startswith("approve for 0x") and "sent again" in str(line["msg"])
    )
    unknown = sent - landed
    approve = bytes.fromhex("095ea7b3")  # approve(address,uint256)
    assert all(bytes(ctx.w3.eth.get_transaction(HexBytes(h))["input"])[:4] == approve for h in unknown)
    assert len(unknown) == reapproved, f"{len(unknown)} transactions of the disputer are in no outbox row"
    assert Counter(kind for kind, status, _h in rows if status == "mined")["dispute"] == len(wrong)
    # Each assertion decided once across every life: a decision is logged only after it is recorded.
    decided = Counter(str(line["assertion"]) for line in lines if line["msg"] == "decided")
    assert max(decided.values(), default=0) <= 1
    reconciled = sum(1 for line in lines if line["msg"] == "outbox row reconciled")
    return {
        "assertions": len(made),
        "wrong": len(wrong),
        "kills": outcome.kills,
        "crash_points": len(outcome.crash_points_hit),
        "reconciled": reconciled,
        "txs": len(sent),
        "reapproved": reapproved,
    }


def _chaos(chain: LocalChain, tmp_path: Path, plan: Chaos) -> None:
    asserter, outcome = run_chaos(chain, plan, tmp_path)
    assert outcome.kills >= plan.kills
    assert sorted(outcome.crash_points_hit) == sorted(plan.crash_points), [
        (x.crash_at, x.exit_code) for x in outcome.lives
    ]
    assert all(life.exit_code in (-signal.SIGKILL, 137) for life in outcome.lives[:-1])
    assert outcome.lives[-1].exit_code == 0, outcome.lives[-1].log.read_text()[-2000:]
    stats = check(chain, asserter, outcome)
    print(f"\nchaos: {stats} in {outcome.seconds:.1f}s (seed {plan.seed})")


def test_chaos_200_assertions_10_kills(local_chain: LocalChain, tmp_path: Path) -> None:
    _chaos(local_chain, tmp_path, Chaos(total=200, kills=10, seed=8, crash_points=CRASH_POINTS[:2]))


@pytest.mark.skipif(os.environ.get("ATTEST_CHAOS_LONG") != "1", reason="the long chaos run: ATTEST_CHAOS_LONG=1")
def test_chaos_long(local_chain: LocalChain, tmp_path: Path) -> None:
    _chaos(local_chain, tmp_path, Chaos(total=1000, kills=40, seed=int(os.environ.get("ATTEST_CHAOS_SEED", "9"))))
