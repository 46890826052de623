"""The daemon wired from the config: judge, watcher, evaluator over the IPFS readers, actor, wallet, telemetry."""

from __future__ import annotations

import logging
from pathlib import Path

from eth_account.signers.local import LocalAccount

from attest.chain.knowledge import approval_reader
from attest.claim import parse_claim
from attest.config import Config, config_path
from attest.connect import ChainContext
from attest.errors import ClaimError
from attest.flow.doctor import Finding
from attest.ipfs.store import ContentStore
from disputer.actions import Actor
from disputer.calibration import CalibrationMap
from disputer.config import DisputerConfig
from disputer.daemon import Daemon
from disputer.evaluate import Evaluator
from disputer.judge import Judge
from disputer.judges import judge_from_config
from disputer.store import DisputerStore
from disputer.telemetry import Metrics
from disputer.wallet import Wallet
from disputer.watcher import Watcher

log = logging.getLogger("disputer.wiring")
DEFAULT_CONFIRMATIONS = 3  # off the devnet, when neither [disputer] nor [networks.<name>] says


def readers_for(config: Config, network: str) -> list[ContentStore]:
    """Where records and documents are read: the local store, then the configured Kubo node and gateways (not
    the pinning services, whose tokens reading does not need)."""
    from attest.ipfs.gateway import Gateway
    from attest.ipfs.kubo import KuboStore
    from attest.ipfs.local import LocalStore

    ipfs = config.ipfs_for(network)
    found: list[ContentStore] = [LocalStore()]
    if ipfs.kubo_api:
        found.append(KuboStore(ipfs.kubo_api, timeout_s=ipfs.timeout_s))
    found += [Gateway(url, timeout_s=ipfs.timeout_s) for url in ipfs.gateways]
    return found


def build_daemon(
    ctx: ChainContext,
    store: DisputerStore,
    config: DisputerConfig,
    attest_config: Config,
    account: LocalAccount,
    *,
    judge: Judge | None = None,
    calibration_base: Path | None = None,
    metrics: Metrics | None = None,
) -> Daemon:
    """A daemon wired from the config: the judge from `[llm]` (the offline judge without a key), the watcher,
    the evaluator over the configured IPFS readers, the actor signing with `account` and its wallet. The store
    follows the chain's present history: what it saw on one a reset ended is retired first."""
    retired = store.follow_chain(ctx.chain_id, bytes.fromhex(ctx.genesis_hash.removeprefix("0x")))
    if retired:
        log.warning(
            "the chain was reset: %d assertions seen on its earlier history are gone", retired,
            extra={"chain_id": ctx.chain_id, "genesis": ctx.genesis_hash},
        )  # fmt: skip
    confirmations = config.confirmations
    if confirmations is None:
        confirmations = ctx.settings.confirmations
    if confirmations is None:
        confirmations = 0 if ctx.network.name == "local" else DEFAULT_CONFIRMATIONS
    if config.ours_only:
        watcher = Watcher(ctx, store, confirmations=confirmations, backfill_s=config.backfill_s)
    else:
        watcher = Watcher(
            ctx, store, confirmations=confirmations, backfill_s=config.backfill_s,
            accept_claims_as_ours=True, claim_is_ours=_is_llm_attest_claim,
        )  # fmt: skip
    evaluator = build_evaluator(ctx, config, attest_config, judge=judge, calibration_base=calibration_base)
    actor = Actor(ctx, store, ctx.sender(account))
    wallet = Wallet(
        ctx.w3, store, ctx.chain_id, owner=actor.sender.address, spender=ctx.oov3.address,
        max_bond_per_dispute=config.amount("max_bond_per_dispute"), total_budget=config.amount("total_budget"),
    )  # fmt: skip
    return Daemon(ctx, store, watcher, evaluator, actor, wallet, config, metrics=metrics)


def build_evaluator(
    ctx: ChainContext,
    config: DisputerConfig,
    attest_config: Config,
    *,
    judge: Judge | None = None,
    calibration_base: Path | None = None,
) -> Evaluator:
    """The evaluator the daemon (or a queue worker) judges with: the judge from `[llm]` (the offline judge without
    a key) over the configured IPFS readers."""
    if judge is None:
        path = config.calibration_path(calibration_base or config_path().parent)
        calibration = CalibrationMap.load(path) if path is not None else None
        judge = judge_from_config(
            attest_config.llm, config.samples, calibration=calibration, offline=config.offline_judge
        )
    ipfs = attest_config.ipfs_for(ctx.network.name)
    return Evaluator(
        judge,
        readers_for(attest_config, ctx.network.name),
        registry=ctx.registry if config.ours_only else None,
        timeout_s=ipfs.timeout_s,
        batch_concurrency=config.concurrency,
        record_judge_s=config.record_judge_s,
        approved_at=approval_reader(ctx.w3, ctx.chain_id),
    )


def startup_checks(ctx: ChainContext, config: DisputerConfig, address: str) -> list[Finding]:
    """What the daemon needs before its first poll (`attest doctor` runs the same checks): OOv3's code, our
    registry for it when only our assertions are watched, and, unless it only previews, gas money for a dispute
    and at least the oracle's minimum bond. Without them a poll of an address without code finds nothing and
    says nothing."""
    from attest.flow.doctor import DISPUTE_GAS, bond_money, gas_money, oov3_code, registry
    from attest.flow.token import Token

    found = [oov3_code(ctx)]
    if found[0].status == "fail":
        return found
    if config.ours_only:
        found.append(registry(ctx, asks=False))
    if not config.dry_run:
        token = Token(ctx.w3, ctx.currency())
        found.append(gas_money(ctx, address, DISPUTE_GAS, "a dispute"))
        found.append(bond_money(ctx, token, address, ctx.oov3.minimum_bond(token.address)))
    return found


def _is_llm_attest_claim(claim: bytes) -> bool:
    try:
        parse_claim(claim)
    except ClaimError:
        return False
    return True
