"""Gas per attestation: our direct path against a bare assertTruth, a wrapper contract and UMA's DataAsserter.

Every variant starts from the same chain snapshot (warm caches, non-zero balances), sends the same claim
and bond, and is reverted afterwards, so the figures differ only by what the variant does.

    python -m bench.gas
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable

from web3 import Web3

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import NUMERICAL_TRUE, ZERO_ADDRESS, OptimisticOracleV3, to_bytes32
from attest.chain.tx import Sender
from attest.devnet import Deployment
from bench.common import ROOT, Table, compile_solidity, throwaway_devnet
from tests.support.oov3 import assert_truth, dispute, settle

LIVENESS = 7200
DIGEST = hashlib.sha256(b"bench record").digest()
# The shape of claim `attest ask` asserts: self-contained JSON naming the record, its digest and the rules.
CLAIM = (
    '{"title":"llm-attest: answer record bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy is correct",'
    '"description":"The attestation record at ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy '
    f"(sha256 0x{DIGEST.hex()}) is well formed, signed by asserter 0x70997970C51812dc3A010C7d01b50e0d17dc79C8, "
    "and its answer is a correct and faithful response to its query given its cited context, per the rules at "
    'ipfs://bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy."}'
).encode()


class GasBench:
    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        self.w3 = w3
        self.d = deployment
        self.oov3 = OptimisticOracleV3(w3, deployment.oov3)
        self.asserter = Sender(w3, dev_account(1))
        self.disputer = Sender(w3, dev_account(2))
        self.settler = Sender(w3, dev_account(3))
        self.currency = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.currency), abi=uma("TestnetERC20").abi
        )
        self.oracle = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.oracle), abi=uma("MockOracleAncillary").abi
        )
        self.bond = self.oov3.minimum_bond(deployment.currency)
        wrapper_artifact = compile_solidity(ROOT / "bench" / "contracts" / "WrapperRegistry.sol", "WrapperRegistry")
        self.wrapper = Sender(w3, dev_account(0)).deploy(
            wrapper_artifact, self.oov3.address, LIVENESS, to_bytes32("ASSERT_TRUTH2")
        )
        # UMA's own example integration: pulls the bond from its caller, asserts with itself as callback recipient.
        # It asserts under OOv3's default identifier, ASSERT_TRUTH, which our devnet does not whitelist by itself.
        whitelist = self.oov3.finder_lookup("IdentifierWhitelist", "IdentifierWhitelist")
        Sender(w3, dev_account(0)).transact(
            whitelist.functions.addSupportedIdentifier(to_bytes32("ASSERT_TRUTH")), "whitelist ASSERT_TRUTH"
        )
        self.data_asserter = Sender(w3, dev_account(0)).deploy(
            uma("DataAsserter"), deployment.currency, self.oov3.address
        )
        for spender in (self.oov3.address, self.wrapper.address, self.data_asserter.address):
            for who in (self.asserter, self.disputer):
                who.transact(self.currency.functions.approve(spender, 2**255), "approve")
        # Warm-up: OOv3 caches the identifier and currency; the wrapper sets its standing allowance.
        self.assert_direct(ZERO_ADDRESS, b"\0" * 32, claim=b"warm-up")
        self.assert_wrapped(claim=b"warm-up")
        self.assert_data(data_id=b"\1" * 32)

    def assert_direct(self, callback: str, domain: bytes, claim: bytes = CLAIM) -> tuple[int, bytes]:
        made, receipt = assert_truth(
            self.oov3,
            self.asserter,
            claim=claim,
            asserter=self.asserter.address,
            callback_recipient=callback,
            liveness=LIVENESS,
            currency=self.d.currency,
            bond=self.bond,
            identifier="ASSERT_TRUTH2",
            domain_id=domain,
        )
        return int(receipt["gasUsed"]), made.assertion_id

    def assert_wrapped(self, claim: bytes = CLAIM) -> tuple[int, bytes]:
        call = self.wrapper.functions.attest(claim, DIGEST, self.d.currency, self.bond)
        receipt = self.asserter.transact(call, "wrapper.attest")
        [made] = self.oov3.assertions_made(receipt)
        return int(receipt["gasUsed"]), made.assertion_id

    def assert_data(self, data_id: bytes = DIGEST) -> tuple[int, bytes]:
        """DataAsserter.assertDataFor: the record's digest as dataId, a 32-byte datum (its CID's hash part)."""
        data = hashlib.sha256(CLAIM).digest()
        call = self.data_asserter.functions.assertDataFor(data_id, data, self.asserter.address)
        receipt = self.asserter.transact(call, "DataAsserter.assertDataFor")
        [made] = self.oov3.assertions_made(receipt)
        return int(receipt["gasUsed"]), made.assertion_id

    def isolated(self, action: Callable[[], int]) -> int:
        snapshot = self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        try:
            return action()
        finally:
            self.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]

    def lifecycle(self, assert_fn: Callable[[], tuple[int, bytes]], disputed: bool) -> tuple[int, int]:
        """(dispute gas, settle gas) after an assertion made by `assert_fn`; dispute gas 0 when undisputed."""
        _, assertion_id = assert_fn()
        dispute_gas = 0
        if disputed:
            dispute_gas = int(dispute(self.oov3, self.disputer, assertion_id, self.disputer.address)["gasUsed"])
            a = self.oov3.get_assertion(assertion_id)
            ancillary = self.oov3.contract.functions.stampAssertion(assertion_id).call()
            push = self.oracle.functions.pushPrice(a.identifier, a.assertion_time, ancillary, NUMERICAL_TRUE)
            self.settler.transact(push, "pushPrice")
        else:
            self.w3.provider.make_request("evm_increaseTime", [LIVENESS])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        settle_gas = int(settle(self.oov3, self.settler, assertion_id)["gasUsed"])
        return dispute_gas, settle_gas


def run(quick: bool = False) -> list[Table]:
    del quick  # every figure here is deterministic: one run of each is the measurement
    with throwaway_devnet() as (w3, deployment):
        bench = GasBench(w3, deployment)
        registry = deployment.registry
        zero = b"\0" * 32
        bare = bench.isolated(lambda: bench.assert_direct(ZERO_ADDRESS, zero)[0])
        variants = [
            ("bare assertTruth (no callback, no domainId)", bare),
            ("bare + domainId = digest", bench.isolated(lambda: bench.assert_direct(ZERO_ADDRESS, DIGEST)[0])),
            ("bare + callbackRecipient = registry", bench.isolated(lambda: bench.assert_direct(registry, zero)[0])),
            (
                "**ours: direct to OOv3** (registry callback, digest domainId)",
                bench.isolated(lambda: bench.assert_direct(registry, DIGEST)[0]),
            ),
            (
                "wrapper contract (pulls bond, asserts, records Pending)",
                bench.isolated(lambda: bench.assert_wrapped()[0]),
            ),
            (
                "UMA DataAsserter example (pulls bond, asserts, stores the datum)",
                bench.isolated(lambda: bench.assert_data()[0]),
            ),
        ]
        same_args = variants[3][1]
        assert_rows = [(name, f"{gas:,}", f"{gas / bare:.3f}x", f"{gas / same_args:.3f}x") for name, gas in variants]

        def life(fn: Callable[[], tuple[int, bytes]], disputed: bool) -> tuple[int, int]:
            result: list[tuple[int, int]] = []

            def measure() -> int:
                result.append(bench.lifecycle(fn, disputed))
                return 0

            bench.isolated(measure)
            return result[0]

        ours_fn = lambda: bench.assert_direct(registry, DIGEST)  # noqa: E731
        bare_fn = lambda: bench.assert_direct(ZERO_ADDRESS, zero)  # noqa: E731
        _, ours_settle = life(ours_fn, disputed=False)
        _, bare_settle = life(bare_fn, disputed=False)
        ours_dispute, ours_settle_disputed = life(ours_fn, disputed=True)
        bare_dispute, bare_settle_disputed = life(bare_fn, disputed=True)
        _, data_settle = life(bench.assert_data, disputed=False)
        data_dispute, data_settle_disputed = life(bench.assert_data, disputed=True)
        ours = same_args
        data_asserter = variants[-1][1]
        goal_bare = ours <= 1.05 * bare
        goal_data = ours < data_asserter
        assert variants[3][0].startswith("**ours"), "the goal compares the ours row"
        lifecycle_rows = [
            (name, f"{o:,}", f"{b:,}", f"{o / b:.3f}x", f"{d:,}", f"{o / d:.3f}x")
            for name, o, b, d in (
                ("settle, undisputed", ours_settle, bare_settle, data_settle),
                ("disputeAssertion", ours_dispute, bare_dispute, data_dispute),
                (
                    "settle, disputed (oracle said true)",
                    ours_settle_disputed,
                    bare_settle_disputed,
                    data_settle_disputed,
                ),
            )
        ]
        goals = (
            f"Goal: ours <= 1.05x bare: against bare minimal {ours / bare:.3f}x, "
            f"{'met' if goal_bare else 'NOT met'}; against bare with the same arguments it is the same call (1.000x). "
            f"Ours below DataAsserter ({ours:,} vs {data_asserter:,}, {ours / data_asserter:.3f}x): "
            f"{'met' if goal_data else 'NOT met'}."
        )
    return [
        Table(
            "Gas per attestation (assertTruth transaction, bond transfer included)",
            ("path", "gas", "vs bare minimal", "vs bare, same arguments"),
            assert_rows,
            f"Claim: {len(CLAIM)} bytes, the shape `attest ask` sends. Bond: the minimum (2 x final fee). "
            "The approve is a separate, one-off transaction (standing allowance) and is not counted. "
            "Ours is a bare `assertTruth` with the registry as callback recipient and the digest as domainId, "
            "so against the same arguments it costs exactly 1.000x: the registry runs no code while asserting. "
            "Against a call that sets neither, OOv3 itself spends about 20k gas per extra non-zero storage slot "
            "(callbackRecipient, domainId); any design that gets callbacks and puts the digest on chain pays "
            "that. The wrapper pays it too, plus a second bond transfer and its own storage. UMA's DataAsserter "
            "(@uma/core examples, deployed unchanged) builds its own claim on chain, pulls the bond "
            "into itself and approves OOv3 (two extra token writes), and stores the datum for its callbacks; its "
            "approve, like ours, is a one-off standing allowance. " + goals,
        ),
        Table(
            "Gas after the assertion: who pays for the registry's callbacks",
            (
                "step",
                "ours (registry callbacks)",
                "bare (no callback)",
                "ours / bare",
                "DataAsserter",
                "ours / DataAsserter",
            ),
            lifecycle_rows,
            "Dispute and settle callbacks run inside the disputer's and settler's transactions. DataAsserter's "
            "resolved callback marks its datum resolved; its disputed callback only emits an event.",
        ),
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
