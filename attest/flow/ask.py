"""`attest ask`: retrieve, answer, sign, pin, assert — each step in the ledger before and after it happens.

The chain part (`assert_pinned`) is shared with `attest resume`, which runs it again on whatever a crash left:
every transaction goes through `send_once`, so the same intent never becomes two transactions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from attest import interrupts
from attest.batch.store import BatchBook
from attest.chain.outbox import Outbox, checkpoint, send_once, settle_open
from attest.chain.registry import read_registry, registry_reads
from attest.chain.tx import RECEIPT_TIMEOUT_S, Sender
from attest.claim import build_claim
from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.context import RetrievedChunk
from attest.errors import BondError, ChainError, Interrupted, KbError, LedgerError, RegistryError
from attest.flow.allowance import plan_allowance
from attest.flow.answering import ANSWER_TEMPLATE, check_query, external_answer, provider_for, signed_record
from attest.flow.publish import pin_record, require_remote
from attest.flow.token import Token
from attest.ipfs.local import LocalStore
from attest.ledger import Attestation, Ledger
from attest.llm.base import Answer, GenerationParams, Usage, non_answer
from attest.networks import Network
from attest.paths import writable_home

MAX_UINT256 = 2**256 - 1
MAX_ROUNDS = 20  # plan-and-send rounds of one assertion: approvals, waits for another ask's, nonces lost

Progress = Callable[[str, str], None]  # (step, what happened), for the live display


def quiet(step: str, detail: str) -> None:
    """The Progress that shows nothing: the default of every job when no display is asked for."""
    return None


@dataclass(frozen=True)
class AskRequest:
    query: str
    network: str | None = None
    account: str | None = None
    provider: str | None = None
    model: str | None = None
    top_k: int = 5
    bond: str | None = None  # decimal, in currency units
    liveness: int | None = None
    currency: str | None = None
    identifier: str | None = None
    answer: str | None = None  # produced elsewhere: recorded with provider "external"
    do_assert: bool = True
    batch: bool = False  # sign and pin now, queue for the next Merkle batch (attest/flow/batch.py)
    # Assert even an answer that answers nothing (no passage, or "the knowledge base does not answer this"):
    # the claim rules make it false, so its bond is lost to the first disputer. Only on an explicit flag.
    assert_anyway: bool = False
    # Off the devnet with no IPFS remote configured: assert anyway, the asserter publishing the content elsewhere.
    publish_elsewhere: bool = False
    # The passages an answer produced elsewhere was given, as (document CID, chunk index) in the KB; None: retrieve.
    context: tuple[tuple[str, int], ...] | None = None


@dataclass
class AskResult:
    attestation: Attestation
    answer: str
    citations: tuple[int, ...]
    chunks: list[RetrievedChunk]
    model: str
    network: Network
    started_devnet: bool
    token: Token | None
    ui_link: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    not_asserted: str | None = None  # why a record that was to be asserted was only signed and pinned
    usage: Usage | None = None  # the tokens the provider reported, when it did


class Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[step] = round((time.perf_counter() - started) * 1000, 3)


def ask(
    request: AskRequest,
    *,
    config: Config | None = None,
    progress: Progress = quiet,
    passphrase_prompt: Callable[[str], str] | None = None,
) -> AskResult:
    from attest.accounts import load_account
    from attest.kb import KnowledgeBase

    config = config or load_config()
    network = config.resolve_network(request.network or config.defaults.network)
    writable_home("attest ask")
    timer = Timer()
    check_query(request.query)
    if request.answer is None:
        with KnowledgeBase() as kb:
            empty = kb.stats().documents == 0
        if empty:  # refused before a devnet is started or an account unlocked for it
            raise KbError("the knowledge base is empty; add documents first: `attest kb add PATH`")
    ctx: ChainContext | None = None
    started_devnet = False
    if request.do_assert and not request.batch:
        with timer("connect"):
            ctx = connect(network.name, config=config)
        started_devnet = ctx.started_devnet
        if ctx.started_devnet:
            progress("devnet", f"started the local devnet at {ctx.w3.provider.endpoint_uri}")  # type: ignore[attr-defined]
        ctx.require_registry()
    loaded = load_account(request.account, network.name, default=config.defaults.account, prompt=passphrase_prompt)
    if loaded.warning:
        progress("account", loaded.warning)
    with timer("plan"):
        # Bond, currency, identifier, balance and fees are checked before any work, so a bad option costs nothing.
        if ctx is not None:
            ctx.sender(loaded.account).current_fees()  # refuses fees above the network's cap
        plan = _plan(ctx, request, loaded.account.address) if ctx is not None else {}
    if ctx is not None:
        # Off the devnet a bond needs somewhere public for the evidence: refused before anything is written.
        warning = require_remote(network, config, published_elsewhere=request.publish_elsewhere)
        if warning is not None:
            progress("warning", warning)

    store = LocalStore()
    with timer("retrieve"), KnowledgeBase() as kb:
        if request.context is None:
            chunks = kb.search(request.query, k=request.top_k)
        else:
            chunks = [kb.chunk_at(doc_cid, index) for doc_cid, index in request.context]
        corpus = kb.pin_manifest(store) if kb.stats().documents else None
    progress("retrieve", f"{len(chunks)} passages")
    checkpoint("retrieved")

    with timer("answer"):
        answer, model_label = _answer(request, chunks, config)
    progress("answer", f"{model_label}, {len(answer.text)} characters")
    checkpoint("answered")
    unanswered = non_answer(answer, len(chunks)) if ctx is not None or request.batch else None
    if unanswered is not None and request.assert_anyway:
        progress("warning", f"asserting anyway (--assert-anyway) although {unanswered}: the bond is likely lost")
        unanswered = None
    elif unanswered is not None:
        progress("no bond", f"{unanswered}: signed and pinned, not asserted (--assert-anyway to insist)")
        ctx, plan = None, {}

    with timer("sign"):
        data, digest = signed_record(request.query, answer, chunks, corpus, loaded.account)
    with Ledger() as ledger:
        with interrupts.deferred():  # a row written is a row the interrupt handler below knows of
            attestation_id = ledger.begin(
                network=network.name,
                chain_id=network.chain_id,
                account=loaded.label,
                asserter=loaded.account.address,
                query=request.query,
                record=data,
                digest=digest,
                want_assert=ctx is not None,
                plan=plan,
                genesis_hash=None if ctx is None else ctx.genesis_hash,
            )
        token = None
        try:
            checkpoint("signed")
            with timer("pin"):
                pin_record(ledger, ledger.get(attestation_id), store, config)
            progress("pin", f"ipfs://{ledger.get(attestation_id).cid}")
            if request.batch and unanswered is None:
                BatchBook(ledger.database).queue(attestation_id)
                progress("queue", "queued for the next batch (`attest batch flush`, or `attest batch run`)")
            if ctx is not None:
                sender = ctx.sender(loaded.account)
                with timer("assert"):
                    token = assert_pinned(ledger, ledger.get(attestation_id), ctx, sender, progress, checked=True)
        except KeyboardInterrupt:
            if ctx is None or ledger.mined_tx(attestation_id, "assert") is None:
                raise _interrupted(ledger, attestation_id) from None
            with interrupts.ignored():  # the assertion is made: record it and show it, as if no Ctrl-C came
                token = assert_pinned(ledger, ledger.get(attestation_id), ctx, ctx.sender(loaded.account))
        final = ledger.get(attestation_id)
    link = None
    if final.assert_tx is not None and final.log_index is not None:
        link = network.oracle_ui_link(final.assert_tx, final.log_index)
    return AskResult(
        final, answer.text, answer.citations, chunks, model_label, network,
        started_devnet, token, link, timer.ms, unanswered, answer.metadata.usage,
    )  # fmt: skip


def _interrupted(ledger: Ledger, attestation_id: int) -> Interrupted:
    """Ctrl-C before the assertion was mined: cancel the attestation if none of its transactions was sent
    (a `signed` one never was: the outbox sends under `interrupts.deferred`), else leave it to `attest resume`."""
    with interrupts.ignored():
        if ledger.cancel(attestation_id, "interrupted (Ctrl-C) before anything was sent", unsent=True):
            return Interrupted(
                f"attestation #{attestation_id} cancelled, nothing was sent on chain (`attest resume {attestation_id}` "
                "takes it up again)"
            )
    return Interrupted(
        f"attestation #{attestation_id} has a transaction out, so it stays open: `attest resume {attestation_id}` "
        "finishes it"
    )


def _answer(request: AskRequest, chunks: list[RetrievedChunk], config: Config) -> tuple[Answer, str]:
    from attest.prompts import catalog

    if request.answer is not None:
        return external_answer(request.answer, request.model, chunks)
    provider, model = provider_for(request.provider, request.model, config)
    answer = provider.answer(request.query, chunks, catalog.get(ANSWER_TEMPLATE), GenerationParams(model=model))
    return answer, f"{provider.label}:{model}"


def _plan(ctx: ChainContext, request: AskRequest, owner: str) -> dict[str, object]:
    """The assertion's parameters, fixed before the record is pinned so a resume asserts the same thing."""
    # Everything the checks below read, in a few JSON-RPC batches rather than a round trip each.
    # A --currency that is no address is refused here, before the batches would carry it (reads nothing).
    currency = ctx.currency(request.currency) if request.currency else None
    currency = currency or ctx.settings.currency or ctx.network.default_currency
    extra = [("eth_chainId", []), *registry_reads(ctx.require_registry())]
    ctx.oov3.prefetch(ctx.identifier(request.identifier), currency, extra)
    ctx.require_oov3()
    currency = ctx.currency(request.currency)
    token = Token(ctx.w3, currency)
    if not token.has_code():
        raise BondError(
            f"there is no token contract at {currency} on {ctx.network.name}; name a whitelisted bond currency "
            "with --currency, or leave it out for the oracle's default"
        )
    wanted = request.bond or ctx.settings.bond
    bond = token.units(wanted) if wanted is not None else ctx.oov3.minimum_bond(currency)
    identifier = ctx.identifier(request.identifier)
    preflight(ctx, token, identifier, bond, owner)
    liveness = request.liveness or ctx.settings.liveness or ctx.oov3.default_liveness()
    registry = check_registry(ctx, liveness)
    return {
        "oov3": ctx.oov3.address,
        "registry": registry,
        "currency": currency,
        "bond": bond,
        "bond_decimals": token.decimals,
        "bond_symbol": token.symbol,
        "liveness": liveness,
        "identifier": identifier,
    }


def check_registry(ctx: ChainContext, liveness: int) -> str:
    """The registry, when it would count an assertion of this liveness. One that serves another OOv3 would make
    settling revert (its callback refuses the caller), and one whose minimum is above the liveness resolves the
    assertion Rejected: both are refused before anything is signed. (ask never sets an escalation manager,
    which the registry would not count either.)"""
    info = read_registry(ctx.w3, ctx.require_registry())
    if info.oracle != ctx.oov3.address:
        raise RegistryError(
            f"the registry {info.address} serves the OOv3 at {info.oracle}, not {ctx.oov3.address}; fix "
            f"[networks.{ctx.network.name}] registry or oov3, or deploy one (`attest registry deploy`)"
        )
    if liveness < info.min_liveness:
        raise RegistryError(
            f"a liveness of {liveness} s is below the registry's minimum of {info.min_liveness} s (the registry "
            f"would resolve the assertion Rejected); use --liveness {info.min_liveness} or more"
        )
    return info.address


def assert_pinned(
    ledger: Ledger,
    attestation: Attestation,
    ctx: ChainContext,
    sender: Sender,
    progress: Progress = quiet,
    *,
    checked: bool = False,
) -> Token:
    """Approve the bond if needed, then assert; safe to call again on the same attestation after any crash."""
    a = attestation
    assert a.cid is not None and a.rules_cid is not None and a.currency is not None and a.bond is not None
    assert a.liveness is not None and a.identifier is not None and a.registry is not None
    token = Token(ctx.w3, a.currency)
    if a.assertion_id is not None:
        return token
    oov3 = ctx.oov3
    if Web3.to_checksum_address(a.oov3 or "") != oov3.address:
        raise BondError(f"attestation #{a.id} was planned for the oracle at {a.oov3}, not {oov3.address}")
    claim = build_claim(a.cid, a.digest, a.asserter, a.rules_cid, a.query)
    call = oov3.assert_truth_call(
        claim=claim, asserter=a.asserter, callback_recipient=a.registry, liveness=a.liveness, currency=a.currency,
        bond=a.bond, identifier=a.identifier, domain_id=bytes.fromhex(a.digest.removeprefix("0x")),
    )  # fmt: skip
    notice = partial(progress, "fees")  # a stuck transaction replaced
    mined = ledger.mined_tx(a.id, "assert")
    to_send = mined is None and settle_open(ledger, a.id, "assert", sender, "assertTruth", notice=notice) is None
    if to_send:
        if not checked:
            preflight(ctx, token, a.identifier, a.bond, sender.address)
        if oov3.cache_is_stale(a.identifier, token.address):
            # OOv3 caches whitelists and fees; after UMA governance changes them, assertions revert until synced.
            sender.transact(oov3.sync_uma_params_call(a.identifier, token.address), "syncUmaParams")
    ledger.update(a.id, "asserting", {"claim_bytes": len(claim)}, status="asserting", claim=claim)
    if to_send:
        receipt = _approve_and_assert(ledger, a, ctx, sender, token, call, progress)
    else:  # mined or landed just now: the outbox returns it (or signs anew if a reorg took it)
        receipt = send_once(ledger, a.id, "assert", sender, call, "assertTruth", notice=notice)
    made = oov3.made_in(receipt)
    ledger.update(
        a.id,
        "asserted",
        {"assertion_id": made.assertion_id.hex()},
        status="asserted",
        assertion_id="0x" + made.assertion_id.hex(),
        assert_tx=made.tx_hash.hex() if made.tx_hash.hex().startswith("0x") else "0x" + made.tx_hash.hex(),
        log_index=made.log_index,
        block_number=made.block_number,
        expiration=made.expiration_time,
    )
    checkpoint("asserted")
    progress("assert", f"assertion 0x{made.assertion_id.hex()}")
    return token


def _approve_and_assert(
    ledger: Ledger,
    a: Attestation,
    ctx: ChainContext,
    sender: Sender,
    token: Token,
    call: ContractFunction,
    progress: Progress,
) -> TxReceipt:
    """Approve what the asks of this account still need (attest/flow/allowance.py), then assert. Each decision
    and the transaction it sends are made under the account's signing lock; receipts are awaited outside it."""
    outbox = Outbox(ledger, sender, resign_lost=False, notice=lambda line: progress("nonce", line))
    notice = partial(progress, "fees")
    spender = ctx.oov3.address
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    approved = 0
    for _round in range(MAX_ROUNDS):
        settle_open(ledger, a.id, "approve", sender, "approve", notice=notice)  # its own approval, from before a crash
        kind, action = "assert", "assertTruth"
        with sender.signing():
            current = ledger.get(a.id)
            if current.status == "cancelled":  # `attest discard` from another terminal, under this same lock
                raise LedgerError(f"attestation #{a.id} was discarded meanwhile; nothing of it was sent")
            plan = plan_allowance(ledger, current, token, spender, sender)
            if plan.wait:
                sent = None
            elif plan.approve is not None:
                approved = MAX_UINT256 if ctx.settings.standing_allowance else plan.approve
                kind, action = "approve", "approve"
                build = partial(token.approve_call, spender, approved)
                sent = outbox.send(a.id, kind, build, action, repeatable=True, wait=False)
            else:
                sent = outbox.send(a.id, kind, lambda: call, action, wait=False)
        if sent is None:  # another ask's approval is on its way: it covers this one too
            if time.monotonic() > deadline:
                raise ChainError(
                    f"an approval sent by another ask of {sender.address} was not mined within "
                    f"{RECEIPT_TIMEOUT_S:.0f}s; check the node, then `attest resume`"
                )
            time.sleep(0.05)
            continue
        if sent.failure is not None:
            # Another wallet or machine using this account moved the allowance: plan again from the chain.
            if kind == "assert" and "allowance" in (sent.error or "").lower():
                continue
            raise sent.failure
        receipt = sent.receipt if sent.mined else settle_open(ledger, a.id, kind, sender, action, notice=notice)
        if receipt is None:  # its nonce went to another transaction (the outbox marked it dropped): again
            progress("nonce", f"{action} {sent.tx_hash}: its nonce went to another transaction; signing again")
            continue
        if kind == "assert":
            return receipt
        amount = (
            f"any amount of {token.symbol} (standing_allowance)" if approved == MAX_UINT256 else token.show(approved)
        )
        progress("approve", f"allowed the oracle to take {amount}")
    raise ChainError(
        f"assertion #{a.id} could not be made after {MAX_ROUNDS} tries: the allowance or nonces of {sender.address} "
        "keep changing (is the account used elsewhere?); `attest resume` tries again"
    )


def preflight(ctx: ChainContext, token: Token, identifier: str, bond: int, owner: str) -> None:
    """Everything that would make assertTruth revert, named before anything is written or signed."""
    oov3 = ctx.oov3
    if not oov3.is_identifier_supported(identifier):
        default = ctx.network.default_identifier
        raise BondError(
            f"identifier {identifier} is not supported on {ctx.network.name}; use --identifier {default} (the "
            "identifier OOv3 asserts truths with), or leave the option out"
        )
    if not oov3.is_currency_whitelisted(token.address):
        raise BondError(f"{token.symbol} ({token.address}) is not a whitelisted bond currency on {ctx.network.name}")
    minimum = oov3.minimum_bond(token.address)
    if bond < minimum:
        raise BondError(
            f"a bond of {token.show(bond)} is below the oracle's minimum of {token.show(minimum)} on "
            f"{ctx.network.name}; raise --bond"
        )
    balance = token.balance(owner)
    if balance < bond:
        # At the minimum already, a lower --bond would only be refused in turn.
        lower = "" if bond <= minimum else f" or lower --bond (the minimum is {token.show(minimum)})"
        raise BondError(
            f"{owner} holds {token.show(balance)} but the bond is {token.show(bond)}; fund the account{lower}"
        )
