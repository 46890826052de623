"""After `ask`: finish what a crash interrupted (`resume`), follow disputes, settle, and report status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attest.chain.oov3 import Assertion
from attest.chain.outbox import checkpoint, send_once
from attest.chain.tx import Sender
from attest.config import Config, load_config
from attest.connect import ChainContext, Standing, connect
from attest.errors import AttestError, LedgerError, TransactionRejected
from attest.flow.ask import Progress, assert_pinned, quiet
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
    ref: str | None = None,
    *,
    config: Config | None = None,
    progress: Progress = quiet,
    prompt: Callable[[str], str] | None = None,
) -> list[Outcome]:
    """Drive every unfinished attestation to its next resting state: pinned, asserted. Cancelled ones are left
    alone; `ref` names one attestation to resume, a cancelled one included (it is taken up again)."""
    config = config or load_config()
    outcomes: list[Outcome] = []
    contexts: dict[str, ChainContext] = {}
    with Ledger() as ledger:
        if ref is None:
            todo = ledger.unfinished()
        else:
            todo = [ledger.reopen(ledger.find(ref).id)]
            if todo[0].finished or todo[0].status not in ("signed", "pinned", "asserting"):
                return [Outcome(todo[0], "at rest", f"nothing to resume ({todo[0].status})")]
        for a in todo:
            if a.status == "signed":
                pin_record(ledger, a, LocalStore(), config)
                progress("pin", f"#{a.id}: pinned ipfs://{ledger.get(a.id).cid}")
                a = ledger.get(a.id)
            if a.want_assert and a.status in ("pinned", "asserting") and a.assertion_id is None:
                ctx = _ctx(a.network, config, contexts)
                a = ledger.match_chain(a, ctx.genesis_hash)
                if a.status == "orphaned":
                    outcomes.append(Outcome(a, "orphaned", chain_gone(a)))
                    continue
                assert_pinned(ledger, a, ctx, _sender(ctx, a, config, prompt), progress)
                outcomes.append(Outcome(ledger.get(a.id), "resumed", "asserted"))
            elif a.status in ("signed", "pinned"):
                outcomes.append(Outcome(ledger.get(a.id), "resumed", "pinned"))
    return outcomes


def discard(ref: str, *, config: Config | None = None) -> Attestation:
    """Cancel an attestation none of whose transactions was signed: `resume` leaves it alone from then on.
    Refused once one was (it may be out). Decided under the account's signing lock, which an ask or resume on
    this ledger holds whenever it signs for it, so none of them signs for it after this returns."""
    from attest.locks import SigningLock

    with Ledger() as ledger:
        a = ledger.find(ref)
        if a.status == "cancelled":
            return a
        with SigningLock.configured(a.chain_id, a.asserter).held():
            if not ledger.cancel(a.id, "discarded (`attest discard`)", unsent=False):
                a = ledger.get(a.id)
                if a.finished:
                    raise LedgerError(f"attestation #{a.id} is {a.status}, not open; there is nothing to discard")
                raise LedgerError(
                    f"attestation #{a.id} cannot be discarded: a transaction of it is out (see `attest status "
                    f"{a.id}`); `attest resume {a.id}` finishes it"
                )
            return ledger.get(a.id)


def chain_gone(a: Attestation) -> str:
    """Why an orphaned attestation is left alone, in one line."""
    return (
        f"its chain is gone: it was made on {a.network} (chain {a.chain_id}, genesis {(a.genesis_hash or '?')[:10]}…), "
        "whose node now serves another history (the devnet was reset); nothing of it can be sent or settled"
    )


def refresh(ledger: Ledger, a: Attestation, ctx: ChainContext) -> tuple[Attestation, Assertion | None, Standing | None]:
    """Bring the ledger row in line with the chain: disputed by whom, settled how (even by someone else); or
    orphaned when the chain it was made on is gone (no chain view then). The outcome is the registry's
    (`attestationOf`), not OOv3's resolution alone: a row settled before that rule is corrected here. The
    registry's view comes back once the assertion is settled."""
    a = ledger.match_chain(a, ctx.genesis_hash)
    if a.assertion_id is None or a.status == "orphaned":
        return a, None, None
    chain = ctx.oov3.get_assertion(bytes.fromhex(a.assertion_id[2:]))
    if not chain.exists:
        return a, chain, None
    if chain.disputed and a.disputer is None:
        ledger.update(a.id, "disputed", {"disputer": chain.disputer}, status="disputed", disputer=chain.disputer)
    if not chain.settled:
        return ledger.get(a.id), chain, None
    standing = ctx.standing(chain, a.registry)
    if a.status != "settled":
        detail = {"by": "another account", "outcome": standing.outcome, "reason": standing.reason}
        ledger.update(a.id, "settled", detail, status="settled", outcome=standing.outcome)
    elif a.outcome != standing.outcome:
        detail = {"outcome": standing.outcome, "was": a.outcome or "", "reason": standing.reason}
        ledger.update(a.id, "outcome", detail, outcome=standing.outcome)
    return ledger.get(a.id), chain, standing


def _told(standing: Standing) -> str:
    return f"{standing.outcome}: {standing.reason}" if standing.reason else standing.outcome


def settle(
    refs: list[str],
    *,
    settle_all: bool = False,
    config: Config | None = None,
    progress: Progress = quiet,
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
                then = f"`attest resume {a.id}` first" if a.status != "orphaned" else "its chain is gone"
                outcomes.append(Outcome(a, "skipped", f"not asserted (status {a.status}); {then}"))
                continue
            ctx = _ctx(a.network, config, contexts)
            a, chain, standing = refresh(ledger, a, ctx)
            if a.status == "orphaned":
                outcomes.append(Outcome(a, "skipped", chain_gone(a)))
                continue
            if a.status == "settled":
                outcomes.append(Outcome(a, "already settled", _told(standing) if standing else a.outcome or ""))
                continue
            assert chain is not None
            if not chain.exists:
                outcomes.append(Outcome(a, "skipped", f"assertion {a.assertion_id} is not on {a.network} now"))
                continue
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
            standing = ctx.standing(ctx.oov3.get_assertion(assertion_id), a.registry)
            outcome = standing.outcome
            ledger.update(
                a.id, "settled", {"outcome": outcome, "reason": standing.reason}, status="settled", outcome=outcome,
                settle_tx=receipt["transactionHash"].to_0x_hex(),
            )  # fmt: skip
            checkpoint("settled")
            progress("settle", f"#{a.id}: {outcome}")
            outcomes.append(Outcome(ledger.get(a.id), "settled", _told(standing)))
    return outcomes


def status(
    ref: str, *, config: Config | None = None
) -> tuple[Attestation, Assertion | None, Standing | None, str | None]:
    """The ledger row (refreshed from the chain when it can be reached), OOv3's view, the registry's, and a chain
    error."""
    config = config or load_config()
    with Ledger() as ledger:
        a = ledger.find(ref)
        if a.assertion_id is None:
            return a, None, None, None
        try:
            ctx = connect(a.network, config=config, start_devnet=False)
            a, chain, standing = refresh(ledger, a, ctx)
            if standing is None and chain is not None and chain.exists:
                standing = ctx.standing(chain, a.registry)  # open: the registry's view, and whether it will count
        except AttestError as err:
            return a, None, None, str(err)
        return a, chain, standing, None


def status_document(ref: str, *, config: Config | None = None) -> dict[str, Any]:
    """`attest status REF --json` (and GET /v1/attestations/REF): the row, its batch, OOv3's and the registry's
    view, and its steps, as plain JSON data."""
    from attest.flow.batch import batch_of, describe

    a, chain, standing, error = status(ref, config=config)
    with Ledger() as ledger:
        steps = ledger.steps(a.id)
    batch = None if a.batch_id is None else batch_of(a.batch_id)
    return {
        "id": a.id, "status": a.status, "outcome": a.outcome, "network": a.network, "record_cid": a.cid,
        "digest": a.digest, "assertion_id": a.assertion_id, "expiration": a.expiration,
        "disputer": a.disputer, "chain_error": error,
        "batch": None if batch is None else {**describe(batch), "leaf_index": a.leaf_index},
        "chain": None if chain is None else {
            "settled": chain.settled, "disputed": chain.disputed, "expiration": chain.expiration_time,
            "settlement_resolution": chain.settlement_resolution,
        },
        "registry": None if standing is None else {"status": standing.status, "reason": standing.reason},
        "steps": [{"at": s.at, "step": s.step, **s.detail} for s in steps],
    }  # fmt: skip
