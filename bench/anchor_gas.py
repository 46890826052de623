"""Gas of a preference's on-chain anchor: one `anchor(root)` of the registry for N preferences (one Anchored
event, whatever N) against one event per preference from a contract of its own; and the registry's deploy.

    python -m bench anchor_gas
"""

from __future__ import annotations

import hashlib
import sys

from web3 import Web3

from attest.accounts import dev_account
from attest.batch import merkle
from attest.chain.artifacts import shipped
from attest.chain.registry import deploy_call
from attest.chain.tx import Sender
from bench.common import ROOT, Table, compile_solidity, throwaway_devnet

SIZES = (1, 3, 10, 100, 1_000)
MIN_LIVENESS = 900  # the testnets' minimum, as in README "Going live"


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def run(quick: bool = False) -> list[Table]:
    del quick  # gas is deterministic: one run of each is the measurement
    with throwaway_devnet() as (w3, deployment):
        ranker = Sender(w3, dev_account(1))
        registry = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.registry), abi=shipped("AttestationRegistry").abi
        )
        compiled = compile_solidity(ROOT / "bench" / "contracts" / "PreferenceEvent.sol", "PreferenceEvent")
        separate = Sender(w3, dev_account(0)).deploy(compiled)

        def anchor(n: int) -> int:
            root = merkle.build([_digest(f"preference {i}") for i in range(n)]).root
            return int(ranker.transact(registry.functions.anchor(root), "anchor")["gasUsed"])

        def one_event(i: int) -> int:
            call = separate.functions.rank(_digest(f"p {i}"), _digest(f"a {i}"), _digest(f"b {i}"), 1)
            return int(ranker.transact(call, "rank")["gasUsed"])

        event_gas = one_event(0)
        rows = []
        for n in SIZES:
            gas = anchor(n)
            rows.append(
                (f"{n:,}", f"{gas:,}", f"{gas / n:,.1f}", f"{event_gas * n:,}", f"{event_gas:,}",
                 f"{gas / (event_gas * n):.4f}x")
            )  # fmt: skip
        deployer = dev_account(0).address
        deploy_gas = int(deploy_call(w3, deployment.oov3, MIN_LIVENESS).estimate_gas({"from": deployer}))
        factory = w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        separate_deploy = int(factory.constructor().estimate_gas({"from": deployer}))
    return [
        Table(
            "Anchoring N preferences: one Anchored event for their Merkle root vs one event per preference",
            ("preferences", "anchor(root) gas", "per preference", "N separate events", "one separate event",
             "anchor vs separate"),
            rows,
            "The root is the OpenZeppelin-compatible Merkle root of the preference digests (attest/batch/merkle.py); "
            "the transaction is the same size for any N (only the 32-byte root travels), so its gas is flat and "
            "the per-preference cost falls as 1/N. The separate event (bench/contracts/PreferenceEvent.sol) names "
            "the digest, the ranker, both answer digests and the choice, per preference. Gas used, the ranker "
            "sending. Deploy gas (eth_estimateGas): the AttestationRegistry with anchor() "
            f"{deploy_gas:,} (minimum liveness {MIN_LIVENESS} s); the separate contract {separate_deploy:,}.",
        )
    ]  # fmt: skip


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
