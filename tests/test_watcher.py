"""The watcher against the devnet's real UMA stack: what it finds, what it skips, restarts, reorgs, chunking."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import ZERO_ADDRESS, AssertionMade, OptimisticOracleV3
from attest.chain.tx import Sender
from attest.connect import ChainContext, connect
from attest.errors import ChainError
from attest.localnet import HOST
from attest.networks import ASSERT_TRUTH2
from disputer.store import DisputerStore
from disputer.watcher import Watcher
from tests.conftest import LocalChain
from tests.support.oov3 import assert_truth, dispute, settle
from tests.support.ports import free_port

LIVENESS = 3600


@dataclasses.dataclass
class Env:
    chain: LocalChain
    ctx: ChainContext
    asserter: Sender
    disputer: Sender
    currency: Contract
    bond: int
    db: Path

    def make(self, claim: bytes = b"an answer", *, ours: bool = True) -> AssertionMade:
        made, _ = assert_truth(
            self.ctx.oov3,
            self.asserter,
            claim=claim,
            asserter=self.asserter.address,
            callback_recipient=self.ctx.require_registry() if ours else ZERO_ADDRESS,
            liveness=LIVENESS,
            currency=self.chain.deployment.currency,
            bond=self.bond,
            identifier=ASSERT_TRUTH2,
            domain_id=Web3.keccak(claim),
        )
        return made

    def rpc(self, method: str, *params: Any) -> Any:
        return self.chain.w3.provider.make_request(RPCEndpoint(method), list(params))["result"]

    def mine(self, blocks: int) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def head(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def hash_of(self, block: int) -> bytes:
        return bytes(self.chain.w3.eth.get_block(block)["hash"])

    def store(self) -> DisputerStore:
        return DisputerStore(self.db)

    def watcher(self, store: DisputerStore, **kw: Any) -> Watcher:
        kw.setdefault("confirmations", 0)
        kw.setdefault("backfill_s", 10 * LIVENESS)
        return Watcher(self.ctx, store, **kw)


@pytest.fixture
def env(local_chain: LocalChain) -> Env:
    ctx = connect("local")
    asserter, disputer = Sender(ctx.w3, dev_account(1)), Sender(ctx.w3, dev_account(2))
    currency = ctx.w3.eth.contract(
        address=Web3.to_checksum_address(local_chain.deployment.currency), abi=uma("TestnetERC20").abi
    )
    bond = ctx.oov3.minimum_bond(local_chain.deployment.currency)
    for who in (asserter, disputer):  # one allowance for every bond of the test
        who.transact(currency.functions.approve(ctx.oov3.address, 100 * bond), "approve")
    return Env(local_chain, ctx, asserter, disputer, currency, bond, local_chain.home / "disputer.sqlite")


def ids(items: list[AssertionMade]) -> list[bytes]:
    return [m.assertion_id for m in items]


def test_finds_ours_and_ignores_foreign_ones(env: Env) -> None:
    ours, foreign = env.make(b"ours"), env.make(b"foreign", ours=False)
    with env.store() as store:
        result = env.watcher(store).poll()
        assert ids(result.new) == [ours.assertion_id]
        assert [a.assertion_id for a in store.pending(env.ctx.chain_id)] == [ours.assertion_id]
        assert store.get(foreign.assertion_id) is None
        stored = store.get(ours.assertion_id)
        assert stored is not None and stored.claim == b"ours" and stored.bond == env.bond and stored.is_ours
        assert stored.block_hash == env.hash_of(ours.block_number)
        again = env.watcher(store).poll()
        assert again.new == [] and again.chunks == 1  # the rescan window only
        cp = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)
        assert cp is not None and (cp.block_number, cp.block_hash) == (env.head(), env.hash_of(env.head()))


def test_ours_only_off_and_claims_accepted_as_ours(env: Env, tmp_path: Path) -> None:
    ours, foreign = env.make(b"ours"), env.make(b"foreign", ours=False)
    claimed, hostile = env.make(b"llm-attest claim", ours=False), env.make(b"boom", ours=False)

    def claim_is_ours(claim: bytes) -> bool:
        if claim == b"boom":
            raise RecursionError("a hostile claim")
        return claim.startswith(b"llm-attest")

    with DisputerStore(tmp_path / "all.sqlite") as store:
        env.watcher(store, ours_only=False).poll()
        flags = {a.assertion_id: a.is_ours for a in store.assertions(env.ctx.chain_id, ours=None)}
        assert flags == {ours.assertion_id: True, foreign.assertion_id: False, claimed.assertion_id: False,
                         hostile.assertion_id: False}  # fmt: skip
    with DisputerStore(tmp_path / "claims.sqlite") as store:
        result = env.watcher(store, accept_claims_as_ours=True, claim_is_ours=claim_is_ours).poll()
        assert ids(result.new) == [ours.assertion_id, claimed.assertion_id]
    with pytest.raises(ValueError, match="claim_is_ours"), env.store() as store:
        env.watcher(store, accept_claims_as_ours=True)


def test_waits_for_confirmations(env: Env) -> None:
    made = env.make()
    with env.store() as store:
        watcher = env.watcher(store, confirmations=3)
        first = watcher.poll()
        assert first.new == [] and first.to_block == env.head() - 3
        env.mine(2)
        assert watcher.poll().new == []
        env.mine(1)
        assert ids(watcher.poll().new) == [made.assertion_id]
        assert made.block_number == env.head() - 3
        # Restarted with more confirmations: the re-scan stays below the checkpoint, which never moves back.
        before = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)
        again = env.watcher(store, confirmations=10, chunk_blocks=2).poll()
        assert again.chunks > 1 and again.to_block == env.head() - 10
        assert store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address) == before


def test_scans_a_long_range_in_chunks(env: Env) -> None:
    a = env.make(b"first")
    env.mine(23)
    b = env.make(b"second")
    env.mine(3)
    with env.store() as store:
        result = env.watcher(store, chunk_blocks=5).poll()
        assert ids(result.new) == [a.assertion_id, b.assertion_id]
        assert result.from_block is not None and result.from_block <= a.block_number
        assert result.to_block == env.head()
        assert result.chunks == -(-(result.to_block - result.from_block + 1) // 5) and result.chunks >= 6


def test_a_restart_neither_misses_nor_duplicates(env: Env) -> None:
    a = env.make(b"before the restart")
    with env.store() as store:
        assert ids(env.watcher(store).poll().new) == [a.assertion_id]
    b = env.make(b"made while the disputer was down")
    env.mine(4)
    with env.store() as store:  # a new process: new store and watcher on the same file
        assert ids(env.watcher(store).poll().new) == [b.assertion_id]
        # A crash after the events were fetched but before the checkpoint moved: the next poll scans them again.
        store.save_checkpoint(
            env.ctx.chain_id, env.ctx.oov3.address, a.block_number - 1, env.hash_of(a.block_number - 1)
        )
        again = env.watcher(store, rescan_blocks=0).poll()
        assert again.new == [] and again.from_block == a.block_number
        assert len(store.assertions(env.ctx.chain_id, ours=None)) == 2
        assert store.status_summary(env.ctx.chain_id)["ours"]["new"] == 2


def test_first_run_backfills_only_the_window(env: Env) -> None:
    old = env.make(b"long expired")
    env.chain.advance(5 * LIVENESS)
    recent = env.make(b"still disputable")
    with env.store() as store:
        result = env.watcher(store, backfill_s=2 * LIVENESS).poll()
        assert ids(result.new) == [recent.assertion_id]
        assert result.from_block is not None and old.block_number < result.from_block <= recent.block_number
        assert store.get(old.assertion_id) is None


def test_disputes_and_settlements_update_the_status(env: Env) -> None:
    a, b = env.make(b"disputed"), env.make(b"settled")
    with env.store() as store:
        watcher = env.watcher(store)
        watcher.poll()
        dispute(env.ctx.oov3, env.disputer, a.assertion_id, env.disputer.address)
        result = watcher.poll()
        assert result.disputed == [a.assertion_id] and result.settled == []
        stored = store.get(a.assertion_id)
        assert stored is not None and stored.status == "disputed" and stored.disputed_by == env.disputer.address
        assert watcher.poll().disputed == []  # the rescan sees the dispute again: no second report
        env.chain.advance(LIVENESS + 1)
        settle(env.ctx.oov3, env.disputer, b.assertion_id)
        assert watcher.poll().settled == [b.assertion_id]
        settled = store.get(b.assertion_id)
        assert settled is not None and settled.status == "settled" and settled.settled_resolution is True
        assert store.status_summary(env.ctx.chain_id)["ours"] == {
            "new": 0, "evaluated": 0, "disputed": 1, "settled": 1, "gone": 0
        }  # fmt: skip


@pytest.mark.parametrize("rescan_blocks", [64, 0])
def test_a_reorg_marks_the_assertion_gone_and_heals_the_checkpoint(env: Env, rescan_blocks: int) -> None:
    with env.store() as store:
        watcher = env.watcher(store, rescan_blocks=rescan_blocks)
        watcher.poll()
        snapshot = env.rpc("evm_snapshot")
        made = env.make(b"on a fork")
        assert ids(watcher.poll().new) == [made.assertion_id]
        assert env.rpc("evm_revert", snapshot) is True
        env.mine(5)  # another branch, longer than the one that held the assertion
        result = watcher.poll()
        assert result.gone == [made.assertion_id] and result.reorg_from == made.block_number
        stored = store.get(made.assertion_id)
        assert stored is not None and stored.status == "gone" and store.pending(env.ctx.chain_id) == []
        cp = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)
        assert cp is not None and (cp.block_number, cp.block_hash) == (env.head(), env.hash_of(env.head()))
        calm = watcher.poll()
        assert calm.gone == [] and calm.reorg_from is None


def test_a_reorg_to_a_shorter_chain(env: Env) -> None:
    with env.store() as store:
        watcher = env.watcher(store)
        watcher.poll()
        before = env.head()
        snapshot = env.rpc("evm_snapshot")
        made = env.make(b"on a fork")
        env.mine(3)
        watcher.poll()
        assert env.rpc("evm_revert", snapshot) is True  # the new head is below the assertion's block
        result = watcher.poll()
        assert result.gone == [made.assertion_id] and env.head() == before
        cp = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)
        assert cp is not None and (cp.block_number, cp.block_hash) == (before, env.hash_of(before))


def test_a_reorged_dispute_is_forgotten(env: Env) -> None:
    made = env.make()
    with env.store() as store:
        watcher = env.watcher(store)
        watcher.poll()
        snapshot = env.rpc("evm_snapshot")
        dispute(env.ctx.oov3, env.disputer, made.assertion_id, env.disputer.address)
        assert watcher.poll().disputed == [made.assertion_id]
        assert env.rpc("evm_revert", snapshot) is True
        env.mine(3)
        watcher.poll()
        stored = store.get(made.assertion_id)
        assert stored is not None and (stored.status, stored.disputed_by, stored.disputed_tx) == ("new", None, None)


class _RangeLimitedRpc(ThreadingHTTPServer):
    """An RPC in front of anvil that refuses eth_getLogs over more than `max_range` blocks, as hosted RPCs do."""

    def __init__(self, upstream: str, max_range: int) -> None:
        self.upstream, self.max_range, self.refused = upstream, max_range, 0
        super().__init__((HOST, free_port()), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _RangeLimitedRpc

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = json.loads(body)
        if request.get("method") == "eth_getLogs":
            query = request["params"][0]
            if int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1 > self.server.max_range:
                self.server.refused += 1
                error = {"code": -32005, "message": f"block range is too wide (max {self.server.max_range})"}
                return self._reply(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode())
        forward = urllib.request.Request(self.server.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(forward, timeout=10) as upstream:
            self._reply(upstream.read())

    def _reply(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def limited(env: Env) -> Iterator[tuple[ChainContext, _RangeLimitedRpc]]:
    server = _RangeLimitedRpc(env.chain.w3.provider.endpoint_uri, max_range=7)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    w3 = Web3(Web3.HTTPProvider(f"http://{HOST}:{server.server_address[1]}"))
    yield dataclasses.replace(env.ctx, w3=w3, oov3=OptimisticOracleV3(w3, env.ctx.oov3.address)), server
    server.shutdown()
    server.server_close()


def test_a_range_the_rpc_refuses_is_halved(env: Env, limited: tuple[ChainContext, _RangeLimitedRpc]) -> None:
    ctx, server = limited
    a = env.make(b"first")
    env.mine(20)
    b = env.make(b"second")
    with env.store() as store:
        watcher = Watcher(ctx, store, confirmations=0, backfill_s=LIVENESS, chunk_blocks=100)
        assert ids(watcher.poll().new) == [a.assertion_id, b.assertion_id]
        assert server.refused > 0 and watcher.chunk_blocks <= 7


def test_an_unreachable_rpc_is_a_chain_error_and_loses_nothing(env: Env) -> None:
    made = env.make()
    with env.store() as store:
        w3 = Web3(Web3.HTTPProvider(f"http://{HOST}:{free_port()}", request_kwargs={"timeout": 2}))
        down = dataclasses.replace(env.ctx, w3=w3, oov3=OptimisticOracleV3(w3, env.ctx.oov3.address))
        with pytest.raises(ChainError, match="next poll resumes from the checkpoint"):
            Watcher(down, store, confirmations=0, backfill_s=LIVENESS).poll()
        assert store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address) is None
        assert ids(env.watcher(store).poll().new) == [made.assertion_id]
