"""Fast over a real RPC: an `ask` batches its reads and reads what cannot change once per connection, so it makes
about as many JSON-RPC round trips as web3 alone sending the same approve and assertTruth (bench/rpc.py)."""

from __future__ import annotations

import json

from web3 import Web3

from attest.chain.rpc import RARE_TTL_S, ReadCache, forget_rare_reads, http_provider
from bench.rpc import LatencyProxy
from tests.conftest import LocalChain
from tests.test_ask import KB_DOCS, QUESTION, ok

ANCHOR_TRIPS = 16  # approve + assertTruth with web3 alone, as bench/rpc.py measures it
GOAL_TRIPS = ANCHOR_TRIPS * 3 // 2


def point_devnet_at(chain: LocalChain, proxy: LatencyProxy) -> None:
    """This test's home reaches the session's anvil through the proxy (its own devnet/ with the proxy's port)."""
    shared = (chain.home / "devnet").resolve()
    node = json.loads((shared / "node.json").read_text())
    (chain.home / "devnet").unlink()
    (chain.home / "devnet").mkdir()
    (chain.home / "devnet" / "deployment.json").write_text((shared / "deployment.json").read_text())
    (chain.home / "devnet" / "node.json").write_text(json.dumps({**node, "port": proxy.port}))


def test_an_ask_makes_about_as_many_round_trips_as_web3_alone(local_chain: LocalChain) -> None:
    chain = local_chain
    ok("kb", "add", str(KB_DOCS))
    proxy = LatencyProxy(str(chain.w3.provider.endpoint_uri), latency_s=0.0)  # type: ignore[attr-defined]
    try:
        point_devnet_at(chain, proxy)
        out = json.loads(ok("ask", QUESTION, "--json"))
        assert out["assertion_id"]
        waited = proxy.unmined_receipts  # polls before anvil mined (more on a loaded machine): waiting, not work
        trips, calls = proxy.reset()
    finally:
        proxy.close()
    assert trips - waited <= GOAL_TRIPS, (trips, waited, calls)
    # What cannot change is read once, and nothing twice that a batch could carry.
    assert calls["eth_chainId"] <= 1 and calls["eth_getCode"] <= 2, calls
    assert calls["eth_sendRawTransaction"] == 2 and calls["eth_getTransactionReceipt"] - waited == 2, (waited, calls)


def test_a_node_that_takes_no_batches_is_read_one_call_at_a_time(local_chain: LocalChain) -> None:
    ok("kb", "add", str(KB_DOCS))
    proxy = LatencyProxy(str(local_chain.w3.provider.endpoint_uri), latency_s=0.0, refuse_batches=True)  # type: ignore[attr-defined]
    try:
        point_devnet_at(local_chain, proxy)
        out = json.loads(ok("ask", QUESTION, "--json"))
    finally:
        proxy.close()
    assert out["assertion_id"]


def test_what_changes_rarely_is_read_again_after_a_revert(local_chain: LocalChain) -> None:
    minimum = ("eth_call", [{"to": "0x" + "11" * 20, "data": "0x4360af3d" + "00" * 32}, "latest"])
    decimals = ("eth_call", [{"to": "0x" + "11" * 20, "data": "0x313ce567"}, "latest"])
    balance = ("eth_call", [{"to": "0x" + "11" * 20, "data": "0x70a08231" + "00" * 32}, "latest"])
    assert ReadCache.lifetime(*minimum) == RARE_TTL_S
    assert ReadCache.lifetime(*decimals) == float("inf")
    assert ReadCache.lifetime(*balance) is None  # balances and allowances are read every time
    assert ReadCache.lifetime("eth_getCode", ["0x" + "11" * 20, "latest"]) == float("inf")
    w3 = Web3(http_provider(str(local_chain.w3.provider.endpoint_uri), 5.0))  # type: ignore[attr-defined]
    reads = w3.provider.reads  # type: ignore[attr-defined]
    answer = {"jsonrpc": "2.0", "id": 1, "result": "0x" + "00" * 32}
    for request in (minimum, decimals):
        reads.put(ReadCache.key(*request), request[0], ReadCache.lifetime(*request), answer)
    reads.put(ReadCache.key("eth_getCode", ["0x" + "22" * 20, "latest"]), "eth_getCode", float("inf"), {"result": "0x"})
    assert reads.get(ReadCache.key(*minimum)) == answer and reads.get(ReadCache.key(*decimals)) == answer
    assert reads.get(ReadCache.key("eth_getCode", ["0x" + "22" * 20, "latest"])) is None  # no code yet: not kept
    forget_rare_reads(w3)  # what a static call's revert or a mined revert does
    assert reads.get(ReadCache.key(*minimum)) is None and reads.get(ReadCache.key(*decimals)) == answer


def test_the_proxy_tells_waiting_for_a_receipt_from_work() -> None:
    proxy = LatencyProxy("http://127.0.0.1:9", latency_s=0.0)
    try:
        receipt = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": ["0x" + "ab" * 32]}
        block = {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []}
        proxy.record_answer(json.dumps(receipt).encode(), b'{"jsonrpc":"2.0","id":1,"result":null}')
        proxy.record_answer(json.dumps([receipt, block]).encode(), b'[{"id":1,"result":null},{"id":2,"result":"0x1"}]')
        proxy.record_answer(json.dumps(receipt).encode(), b'{"jsonrpc":"2.0","id":1,"result":{"status":"0x1"}}')
        proxy.record_answer(json.dumps(block).encode(), b'{"jsonrpc":"2.0","id":2,"result":null}')
        assert proxy.unmined_receipts == 2
        proxy.reset()
        assert proxy.unmined_receipts == 0
    finally:
        proxy.close()
