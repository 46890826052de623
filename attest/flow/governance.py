"""Governing a knowledge base: approving and revoking documents through the KnowledgeRegistry's governor, and the
DAO's proposal cycle (propose → vote → queue → execute).

Who governs is read from the chain: the registry names its governor; when that is the timelock of the configured
DAO (`[networks.N] kb_governor`, the devnet's own), a change is a Governor proposal; when it is an account
(no code), that account approves and revokes directly. Every step is checked against the chain before anything
is signed (a one-line `GovernanceError` naming the state and what to do), then sent through the one outbox with
the deploy log (`$ATTEST_HOME/deploys.sqlite`) as its log: each intent (a proposal, one account's vote, a queue,
an execution, a direct approval) is one row, so a command run again after a crash settles what it sent instead of
signing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.abi import EncodedCall
from attest.chain.dao import STATES, SUPPORT, Governor, Proposal, Tally
from attest.chain.knowledge import KnowledgeRegistry, canonical_cid, deploy_call
from attest.chain.outbox import IN_FLIGHT, Outbox, TxRow
from attest.chain.tx import Quote
from attest.connect import ChainContext
from attest.errors import GovernanceError
from attest.flow.registry import Deployed, native
from attest.ledger import DeployLog

ChangeKind = Literal["approve", "revoke"]


@dataclass(frozen=True)
class Governed:
    """A network's governed knowledge base: its registry and who governs it."""

    registry: KnowledgeRegistry
    governor: str  # the registry's governor: the DAO's timelock, or an account
    dao: Governor | None  # None: `governor` is an account that approves directly


def governed(ctx: ChainContext) -> Governed:
    name = ctx.network.name
    address = ctx.kb_registry
    if address is None:
        raise GovernanceError(
            f"no KnowledgeRegistry is configured for {name}; set [networks.{name}] kb_registry in the config file"
            + (" (or `attest devnet reset --yes` for a devnet that has one)" if name == "local" else "")
        )
    registry = KnowledgeRegistry.at(ctx.w3, address)
    governor = registry.governor()
    dao_address = ctx.kb_governor
    if dao_address is not None:
        dao = Governor(ctx.w3, dao_address)
        if dao.timelock() != governor:
            raise GovernanceError(
                f"the KnowledgeRegistry {registry.address} is governed by {governor}, not by the timelock "
                f"{dao.timelock()} of the Governor {dao.address}; fix [networks.{name}] kb_governor"
            )
        return Governed(registry, governor, dao)
    if ctx.w3.eth.get_code(Web3.to_checksum_address(governor)):
        raise GovernanceError(
            f"the KnowledgeRegistry {registry.address} is governed by the contract {governor}; set "
            f"[networks.{name}] kb_governor to the Governor whose timelock it is"
        )
    return Governed(registry, governor, None)


@dataclass(frozen=True)
class Sent:
    """What a governance command sent (or found already sent): its transaction and block."""

    tx_hash: str
    block_number: int


@dataclass(frozen=True)
class ChangeResult:
    kind: ChangeKind
    cid: str  # canonical
    contributor: str
    proposal: Proposal | None  # the DAO's proposal; None when an account governor changed the registry directly
    sent: Sent


def default_description(kind: ChangeKind, cid: str, contributor: str) -> str:
    verb = "Approve" if kind == "approve" else "Revoke"
    return f"{verb} document {cid} from contributor {contributor} in the knowledge base"


def change(
    ctx: ChainContext,
    account: LocalAccount,
    log: DeployLog,
    kind: ChangeKind,
    cid_text: str,
    contributor_text: str,
    description: str | None = None,
) -> ChangeResult:
    """Approve or revoke (`kind`) a contributor's document: a DAO proposal, or directly by an account governor."""
    if not Web3.is_address(contributor_text):
        raise GovernanceError(f"--contributor {contributor_text!r} is not an address; give its 0x address")
    contributor = str(Web3.to_checksum_address(contributor_text))
    cid = canonical_cid(cid_text)
    gov = governed(ctx)
    registry = gov.registry
    approved_at = registry.approved_at(contributor, cid)
    if kind == "approve" and approved_at is not None:
        raise GovernanceError(f"{cid} from {contributor} is already approved (since block {approved_at})")
    if kind == "revoke" and approved_at is None:
        raise GovernanceError(f"{cid} from {contributor} is not approved; there is nothing to revoke")
    data = registry.approve_data(contributor, cid) if kind == "approve" else registry.revoke_data(contributor, cid)
    if gov.dao is None:
        if account.address != gov.governor:
            raise GovernanceError(
                f"the KnowledgeRegistry {registry.address} is governed by the account {gov.governor}; sign with it "
                f"(--account), not with {account.address}"
            )
        # One intent per approval round: a re-approval after a revocation is a new one.
        subject = f"{_prefix(ctx, registry.address)}:{kind}:{contributor}:{cid}:{len(registry.approvals_of(cid))}"
        sent = _send(ctx, account, log, subject, f"kb-{kind}", lambda: registry.call(data), f"{kind} {cid}")
        return ChangeResult(kind, cid, contributor, None, sent)
    dao = gov.dao
    text = description or default_description(kind, cid, contributor)
    targets, values, calldatas = [str(registry.address)], [0], [data]
    proposal_id = dao.proposal_id(targets, values, calldatas, text)
    subject = f"{_prefix(ctx, dao.address)}:propose:{proposal_id:x}"
    if dao.snapshot(proposal_id) != 0 and log.tx_intent(subject, "dao-propose").status not in IN_FLIGHT:
        raise GovernanceError(
            f"the same proposal already exists (0x{proposal_id:064x}, {dao.state(proposal_id)}); "
            "`attest dao proposals` shows it; give another --description to propose it anew"
        )
    build = lambda: dao.propose_call(targets, values, calldatas, text)  # noqa: E731
    sent = _send(ctx, account, log, subject, "dao-propose", build, "propose")
    proposal = find_proposal(ctx, dao, f"0x{proposal_id:064x}")
    return ChangeResult(kind, cid, contributor, proposal, sent)


# -- the proposal cycle ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProposalView:
    proposal: Proposal
    state: str
    tally: Tally
    quorum: int  # votes (for + abstain) the proposal needs
    eta: int  # timestamp the timelock executes it from; 0 unless queued


def require_dao(ctx: ChainContext) -> Governor:
    gov = governed(ctx)
    if gov.dao is None:
        raise GovernanceError(
            f"the knowledge base on {ctx.network.name} is governed by the account {gov.governor}, not a DAO: "
            "`attest kb propose` approves directly"
        )
    return gov.dao


def proposals(ctx: ChainContext, dao: Governor) -> list[ProposalView]:
    return [view(dao, p) for p in dao.proposals(_from_block(ctx))]


def view(dao: Governor, p: Proposal) -> ProposalView:
    state = dao.state(p.id)
    quorum = dao.quorum(p.vote_start) if state != "pending" else 0
    return ProposalView(p, state, dao.tally(p.id), quorum, dao.eta(p.id))


def find_proposal(ctx: ChainContext, dao: Governor, text: str) -> Proposal:
    """The proposal named by its id (decimal, 0x hex) or a unique prefix of its hex id."""
    wanted = text.strip().lower()
    found = dao.proposals(_from_block(ctx))
    if wanted.isdigit():
        matches = [p for p in found if str(p.id) == wanted]
    else:
        hex_text = wanted.removeprefix("0x")
        matches = [p for p in found if p.hex_id[2:].startswith(hex_text)] if hex_text else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise GovernanceError(f"{text} names {len(matches)} proposals; give more digits of its id")
    raise GovernanceError(f"no proposal {text} on the Governor {dao.address}; `attest dao proposals` lists them")


def vote(ctx: ChainContext, account: LocalAccount, log: DeployLog, dao: Governor, p: Proposal, support: str) -> Sent:
    if support not in SUPPORT:
        raise GovernanceError(f"--support {support!r}: vote for, against or abstain")
    subject = f"{_prefix(ctx, dao.address)}:vote:{p.id:x}:{account.address}"
    # Checked unless a vote of ours is in flight (a run interrupted after sending it): the outbox settles that one.
    if log.tx_intent(subject, "dao-vote").status not in IN_FLIGHT:
        state = dao.state(p.id)
        if state == "pending":
            now = ctx.w3.eth.block_number
            raise GovernanceError(
                f"proposal {p.hex_id[:12]}… is pending: voting opens after block {p.vote_start} (now {now}); "
                f"wait {p.vote_start + 1 - now} block(s)" + _devnet_hint(ctx, f"--blocks {p.vote_start + 1 - now}")
            )
        if state != "active":
            raise GovernanceError(f"proposal {p.hex_id[:12]}… is {state}; votes are taken only while it is active")
        if dao.has_voted(p.id, account.address):
            raise GovernanceError(f"{account.address} has already voted on proposal {p.hex_id[:12]}…; a vote is final")
        if dao.votes_at(account.address, p.vote_start) == 0:
            raise GovernanceError(
                f"{account.address} held no votes at the proposal's snapshot (block {p.vote_start}); only holders who "
                "had delegated their votes by then can vote"
            )
    action = f"vote {support} on {p.hex_id[:12]}…"
    return _send(ctx, account, log, subject, "dao-vote", lambda: dao.vote_call(p.id, support), action)


def queue(ctx: ChainContext, account: LocalAccount, log: DeployLog, dao: Governor, p: Proposal) -> tuple[Sent, int]:
    """Queue a proposal that passed in the timelock; returns what was sent and the ETA (a timestamp)."""
    subject = f"{_prefix(ctx, dao.address)}:queue:{p.id:x}"
    if log.tx_intent(subject, "dao-queue").status not in IN_FLIGHT:
        state = dao.state(p.id)
        if state != "succeeded":
            raise GovernanceError(f"proposal {p.hex_id[:12]}… cannot be queued: {_why_not(ctx, dao, p, state)}")
    sent = _send(ctx, account, log, subject, "dao-queue", lambda: dao.queue_call(p), f"queue {p.hex_id[:12]}…")
    return sent, dao.eta(p.id)


def execute(ctx: ChainContext, account: LocalAccount, log: DeployLog, dao: Governor, p: Proposal) -> Sent:
    subject = f"{_prefix(ctx, dao.address)}:execute:{p.id:x}"
    if log.tx_intent(subject, "dao-execute").status not in IN_FLIGHT:
        state = dao.state(p.id)
        if state != "queued":
            why = "queue it first (`attest dao queue`)" if state == "succeeded" else _why_not(ctx, dao, p, state)
            raise GovernanceError(f"proposal {p.hex_id[:12]}… cannot be executed: {why}")
        eta = dao.eta(p.id)
        now = int(ctx.w3.eth.get_block("latest")["timestamp"])
        if now < eta:
            raise GovernanceError(
                f"proposal {p.hex_id[:12]}… is in the timelock until {_utc(eta)} (ETA, {eta - now} s from the "
                f"chain's time {_utc(now)}); execute it then" + _devnet_hint(ctx, f"{eta - now}s")
            )
    action = f"execute {p.hex_id[:12]}…"
    return _send(ctx, account, log, subject, "dao-execute", lambda: dao.execute_call(p), action)


def _why_not(ctx: ChainContext, dao: Governor, p: Proposal, state: str) -> str:
    """Why a proposal in `state` cannot move on, in words naming the state."""
    if state == "pending":
        return f"it is pending (voting opens after block {p.vote_start})"
    if state == "active":
        return f"it is active (the vote is open until block {p.vote_end}, now {ctx.w3.eth.block_number})"
    if state == "defeated":
        tally, quorum = dao.tally(p.id), dao.quorum(p.vote_start)
        if tally.for_ + tally.abstain < quorum:
            return (
                f"it is defeated: quorum not reached ({_votes(tally.for_ + tally.abstain)} of "
                f"{_votes(quorum)} votes for or abstaining)"
            )
        return f"it is defeated: {_votes(tally.against)} against, {_votes(tally.for_)} for"
    if state == "queued":
        return f"it is already queued (ETA {_utc(dao.eta(p.id))})"
    if state == "executed":
        return "it was already executed"
    assert state in STATES
    return f"it is {state}"


# -- helpers -----------------------------------------------------------------------------------------------------
def _send(
    ctx: ChainContext,
    account: LocalAccount,
    log: DeployLog,
    subject: str,
    kind: str,
    build: Callable[[], EncodedCall],
    action: str,
) -> Sent:
    outbox = Outbox(log, ctx.sender(account), resign_lost=False)
    receipt = outbox.send(subject, kind, build, action).landed()
    return Sent(receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]))


def _prefix(ctx: ChainContext, contract: str) -> str:
    return f"{ctx.network.name}:{ctx.chain_id}:{contract}"


def _from_block(ctx: ChainContext) -> int:
    # The devnet's deployment block, else the whole chain (a public network's RPC may want a range: set none).
    own = ctx.deployment is not None and ctx.kb_governor == ctx.deployment.governor
    return ctx.deployment.block_number if own and ctx.deployment is not None else 0


def _devnet_hint(ctx: ChainContext, how: str) -> str:
    return f" (on the devnet: `attest devnet advance {how}`)" if ctx.network.name == "local" else ""


def _votes(amount: int) -> str:
    return f"{amount / 10**18:,.4g}"


def _utc(timestamp: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(timestamp, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"


# -- deploying a KnowledgeRegistry ---------------------------------------------------------------------------------
DEPLOY_KIND = "deploy-kb-registry"
DEPLOY_ACTION = "deploy KnowledgeRegistry"


@dataclass(frozen=True)
class RegistryPlan:
    subject: str  # the intent: network, chain and governor
    governor: str
    deployer: str
    quote: Quote | None  # None when an earlier run already signed this deploy: nothing new is paid
    earlier: TxRow[str] | None


def plan_registry(
    ctx: ChainContext, account: LocalAccount, governor: str, log: DeployLog, *, force: bool
) -> RegistryPlan:
    """Every check before a KnowledgeRegistry governed by `governor` is deployed; raises, nothing signed, when the
    network already has one configured (unless `force`), the governor is not an address, or the account cannot
    pay."""
    name = ctx.network.name
    if not Web3.is_address(governor):
        raise GovernanceError(f"--governor {governor!r} is not an address; give the account or timelock's 0x address")
    governor = str(Web3.to_checksum_address(governor))
    if ctx.settings.kb_registry and not force:
        raise GovernanceError(
            f"{name} already has a KnowledgeRegistry configured ({ctx.settings.kb_registry}); --force deploys another"
        )
    subject = f"{name}:{ctx.chain_id}:kb-registry:{governor}"
    earlier = log.tx_intent(subject, DEPLOY_KIND)
    if earlier.status in IN_FLIGHT or (earlier.status == "mined" and not force):
        return RegistryPlan(subject, governor, account.address, None, earlier)
    quote = ctx.sender(account).quote(deploy_call(ctx.w3, governor), DEPLOY_ACTION)
    if quote.balance < quote.cost:
        symbol = ctx.network.native_symbol
        raise GovernanceError(
            f"{DEPLOY_ACTION}: account {account.address} has {native(quote.balance, symbol)} but the deploy may cost "
            f"{native(quote.cost, symbol)}; fund it and retry"
        )
    return RegistryPlan(subject, governor, account.address, quote, None)


def deploy_registry(
    ctx: ChainContext, account: LocalAccount, plan: RegistryPlan, log: DeployLog, *, force: bool
) -> Deployed:
    """Send the planned deploy through the outbox (or settle the earlier one) and check the new contract's
    governor."""
    outbox = Outbox(log, ctx.sender(account), resign_lost=False)
    build = lambda: deploy_call(ctx.w3, plan.governor)  # noqa: E731
    receipt = outbox.send(plan.subject, DEPLOY_KIND, build, DEPLOY_ACTION, repeatable=force and plan.earlier is None)
    landed = receipt.landed()
    address = landed["contractAddress"]
    if address is None:
        tx_hash = landed["transactionHash"].to_0x_hex()
        raise GovernanceError(f"{DEPLOY_ACTION}: the receipt of {tx_hash} names no contract")
    registry = KnowledgeRegistry.at(ctx.w3, address)
    if registry.governor() != plan.governor:
        raise GovernanceError(f"the contract at {address} is governed by {registry.governor()}, not {plan.governor}")
    return Deployed(registry.address, landed["transactionHash"].to_0x_hex(), int(landed["blockNumber"]))
