"""After `ask`: finish what a crash interrupted (`resume`), follow disputes, settle, and report status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from attest.chain.oov3 import Assertion
from attest.chain.outbox import checkpoint, send_once
from attest.chain.tx import Sender
from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.errors import AttestError, LedgerError, TransactionRejected
from attest.flow.ask import Progress, _quiet, assert_pinned
from attest.flow.publish import pin_record
from attest.ipfs.local import LocalStore
from attest.ledger import Attestation, Ledger


@dataclass(frozen=True)
class Outcome:
    attestation: Attestation
    action: str  # what this call did: "resumed", "settled", "waiting", "already settled", ...
    detail: str = ""


def _ctx(network: str, config: Config, cache: dict[str, ChainContext]) -> ChainContext:
    if network not in cache:
        cache[network] = connect(network, config=config)
    return cache[network]


def _sender(ctx: ChainContext, a: Attestation, config: Config, prompt: Callable[[str], str] | None) -> Sender:
    from attest.accounts import load_account

    loaded = load_account(a.account, ctx.network.name, default=config.defaults.account, prompt=prompt)
    if loaded.account.address != a.asserter:
        raise LedgerError(
            f"attestation #{a.id} was signed by {a.asserter}, but account {loaded.label} is {loaded.account.address}; "
            "resume with the same account (--account)"
        )
    return ctx.sender(loaded.account)


def resume(
    *, config: Config | None = None, progress: Progress = _quiet, prompt: Callable[[str], str] | None = None
) -> list[Outcome]:
    """Drive every unfinished attestation to its next resting state: pinned, asserted."""
    config = config or load_config()
    outcomes: list[Outcome] = []
    contexts: dict[str, ChainContext] = {}
    with Ledger() as ledger:
        for a in ledger.unfinished():
            if a.status == "signed":
                pin_record(ledger, a, LocalStore(), config)
                progress("pin", f"#{a.id}: pinned ipfs://{ledger.get(a.id).cid}")
                a = ledger.get(a.id)
            if a.want_assert and a.status in ("pinned", "asserting") and a.assertion_id is None:
                ctx = _ctx(a.network, config, contexts)
                assert_pinned(ledger, a, ctx, _sender(ctx, a, config, prompt), progress)
                outcomes.append(Outcome(ledger.get(a.id), "resumed", "asserted"))
            elif a.status in ("signed", "pinned"):
                outcomes.append(Outcome(ledger.get(a.id), "resumed", "pinned"))
    return outcomes


def refresh(ledger: Ledger, a: Attestation, ctx: ChainContext) -> tuple[Attestation, Assertion | None]:
    """Bring the ledger row in line with the chain: disputed by whom, settled how (even by someone else)."""
    if a.assertion_id is None:
        return a, None
    chain = ctx.oov3.get_assertion(bytes.fromhex(a.assertion_id[2:]))
    if not chain.exists:
        return a, chain
    if chain.disputed and a.disputer is None:
        ledger.update(a.id, "disputed", {"disputer": chain.disputer}, status="disputed", disputer=chain.disputer)
    if chain.settled and a.status != "settled":
        outcome = "attested" if chain.settlement_resolution else "rejected"
        ledger.update(a.id, "settled", {"by": "another account", "outcome": outcome}, status="settled", outcome=outcome)
    return ledger.get(a.id), chain


def settle(
    refs: list[str],
    *,
    settle_all: bool = False,
    config: Config | None = None,
    progress: Progress = _quiet,
    prompt: Callable[[str], str] | None = None,
) -> list[Outcome]:
    """Settle the given attestations (or all asserted ones): expired undisputed, or disputed and resolved."""
    config = config or load_config()
    contexts: dict[str, ChainContext] = {}
    outcomes: list[Outcome] = []
    with Ledger() as ledger:
        targets = ledger.select(statuses=("asserted", "disputed")) if settle_all else [ledger.find(r) for r in refs]
        for a in targets:
            if a.assertion_id is None:
                outcomes.append(Outcome(a, "skipped", f"not asserted (status {a.status}); `attest resume` first"))
                continue
            ctx = _ctx(a.network, config, contexts)
            a, chain = refresh(ledger, a, ctx)
            if a.status == "settled":
                outcomes.append(Outcome(a, "already settled", a.outcome or ""))
                continue
            assert chain is not None
            now = int(ctx.w3.eth.get_block("latest")["timestamp"])
            if not chain.disputed and now < chain.expiration_time:
                outcomes.append(Outcome(a, "waiting", f"disputable for {chain.expiration_time - now} s more"))
                continue
            assertion_id = chain.assertion_id
            call = ctx.oov3.settle_call(assertion_id)
            try:
                sender = _sender(ctx, a, config, prompt)
                receipt = send_once(ledger, a.id, "settle", sender, call, "settleAssertion")
            except TransactionRejected as err:
                # A disputed assertion cannot settle before the oracle has a price: not an error, a wait.
                if chain.disputed:
                    outcomes.append(Outcome(a, "waiting", f"the oracle has not resolved the dispute yet ({err})"))
                    continue
                raise
            settled = ctx.oov3.settled_in(receipt)
            resolution = (
                settled[0].settlement_resolution
                if settled
                else ctx.oov3.get_assertion(assertion_id).settlement_resolution
            )
            outcome = "attested" if resolution else "rejected"
            ledger.update(
                a.id, "settled", {"outcome": outcome}, status="settled", outcome=outcome,
                settle_tx=receipt["transactionHash"].to_0x_hex(),
            )  # fmt: skip
            checkpoint("settled")
            progress("settle", f"#{a.id}: {outcome}")
            outcomes.append(Outcome(ledger.get(a.id), "settled", outcome))
    return outcomes


def status(ref: str, *, config: Config | None = None) -> tuple[Attestation, Assertion | None, str | None]:
    """The ledger row (refreshed from the chain when it can be reached), the chain's view, and a chain error."""
    config = config or load_config()
    with Ledger() as ledger:
        a = ledger.find(ref)
        if a.assertion_id is None:
            return a, None, None
        try:
            ctx = connect(a.network, config=config, start_devnet=False)
            a, chain = refresh(ledger, a, ctx)
        except AttestError as err:
            return a, None, str(err)
        return a, chain, None
