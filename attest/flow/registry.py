"""`attest registry deploy`: our AttestationRegistry for a network's OOv3, checked and priced before it is sent.

A deploy is one intent in the deploy log (attest.ledger.DeployLog), keyed by network, chain, OOv3 and minimum
liveness, and sent through the one outbox: its signed bytes are kept before they leave. After a crash, running
the same command again reconciles them (the receipt, or the same bytes rebroadcast) and reports the contract
they created; nothing is signed twice. Only `--force` deploys another registry for an intent already mined.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.outbox import IN_FLIGHT, Outbox, TxRow
from attest.chain.registry import deploy_call, read_registry
from attest.chain.tx import Quote
from attest.connect import ChainContext
from attest.errors import ChainError, RegistryError
from attest.ledger import DeployLog

KIND = "deploy-registry"
ACTION = "deploy AttestationRegistry"


@dataclass(frozen=True)
class DeployPlan:
    subject: str  # the intent: network, chain, OOv3 and minimum liveness
    oov3: str
    min_liveness: int
    deployer: str
    quote: Quote | None  # None when an earlier run of this deploy already signed it: nothing new is paid
    earlier: TxRow[str] | None  # that earlier transaction


@dataclass(frozen=True)
class Deployed:
    address: str
    tx_hash: str
    block_number: int


def plan_deploy(
    ctx: ChainContext, account: LocalAccount, min_liveness: int, log: DeployLog, *, force: bool
) -> DeployPlan:
    """Every check before money moves. Raises (nothing signed) when a registry is already configured (unless
    `force`), when there is no contract at the OOv3 address, when the deploy would revert or the account cannot
    pay its gas. The RPC's chain id was checked by `connect`."""
    net = ctx.network
    if ctx.registry is not None and not force:
        raise RegistryError(
            f"{net.name} already has an AttestationRegistry at {ctx.registry} (`attest networks show {net.name}`); "
            "--force deploys another"
        )
    ctx.require_oov3()
    oov3 = ctx.oov3.address
    subject = f"{net.name}:{net.chain_id}:{oov3}:{min_liveness}"
    earlier = log.tx_intent(subject, KIND)
    if earlier.status in IN_FLIGHT or (earlier.status == "mined" and not force):
        return DeployPlan(subject, oov3, min_liveness, account.address, None, earlier)
    quote = ctx.sender(account).quote(deploy_call(ctx.w3, oov3, min_liveness), ACTION)
    if quote.balance < quote.cost:
        raise ChainError(
            f"{ACTION}: account {account.address} has {native(quote.balance, net.native_symbol)} but the deploy may "
            f"cost {native(quote.cost, net.native_symbol)}; fund it and retry"
        )
    return DeployPlan(subject, oov3, min_liveness, account.address, quote, None)


def deploy(ctx: ChainContext, account: LocalAccount, plan: DeployPlan, log: DeployLog, *, force: bool) -> Deployed:
    """Send the planned deploy through the outbox (or settle the earlier one), wait for its receipt and check
    the code at the new address enforces what was asked."""
    outbox = Outbox(log, ctx.sender(account), resign_lost=False)
    build = lambda: deploy_call(ctx.w3, plan.oov3, plan.min_liveness)  # noqa: E731
    # `force` makes a mined earlier deploy not count: another contract is wanted.
    receipt = outbox.send(plan.subject, KIND, build, ACTION, repeatable=force and plan.earlier is None).landed()
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"{ACTION}: the receipt of {receipt['transactionHash'].to_0x_hex()} names no contract")
    info = read_registry(ctx.w3, address)
    if info.oracle != plan.oov3 or info.min_liveness != plan.min_liveness:
        raise RegistryError(
            f"the contract at {address} serves OOv3 {info.oracle} with minimum liveness {info.min_liveness} s, not "
            f"{plan.oov3} and {plan.min_liveness} s; do not configure it"
        )
    return Deployed(Web3.to_checksum_address(address), receipt["transactionHash"].to_0x_hex(), receipt["blockNumber"])


def native(wei: int, symbol: str) -> str:
    """An amount of the native token, to six significant digits (plain notation even when tiny)."""
    amount = Web3.from_wei(wei, "ether")
    text = f"{amount:.6g}"
    return f"{amount:f} {symbol}" if "e" in text else f"{text} {symbol}"
