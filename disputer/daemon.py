"""The disputer daemon: poll, evaluate, decide, act; vote on disputes; settle what is due.

One `step()` is one pass: the watcher's poll, then every undecided assertion of ours evaluated (judge calls in
threads, at most `concurrency` at once), decided by the pure policy and recorded once, disputes sent through the
outbox, votes cast on disputed assertions and due assertions settled. `run()` repeats `step()` every
`poll_interval_s` until its stop event is set. The SQLite store and every transaction stay on the loop's
thread: only judging, which is slow and touches no state, runs elsewhere.

Restarts: open outbox rows are reconciled first; a decision to dispute whose transaction never landed is acted
on again (the outbox makes that idempotent); assertions made while the daemon was down are found by the
watcher from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.artifacts import shipped
from attest.chain.oov3 import AssertionMade
from attest.chain.voting import VotingClient
from attest.claim import parse_claim
from attest.config import Config, config_path
from attest.connect import ChainContext
from attest.errors import AttestError, ClaimError
from attest.flow.token import Token
from attest.ipfs.store import ContentStore
from attest.networks import OracleKind
from disputer.actions import Actor, SendResult, ancillary_data
from disputer.calibration import CalibrationMap
from disputer.config import DisputerConfig
from disputer.evaluate import Evaluation, Evaluator
from disputer.judge import Judge
from disputer.judges import judge_from_config
from disputer.policy import Facts, PolicyDecision, decide, vote_price, wants_dispute
from disputer.store import Decision, DisputerStore, StoredAssertion
from disputer.telemetry import Metrics, alert, standard_metrics
from disputer.watcher import ScanResult, Watcher

log = logging.getLogger(__name__)
CHECKS_JUDGE = "deterministic-checks"
DEFAULT_CONFIRMATIONS = 3  # off the devnet, when neither [disputer] nor [networks.<name>] says
NOW_TTL_S = 1.0  # how old a chain time decisions that send nothing may use


@dataclass
class StepReport:
    scan: ScanResult | None = None
    evaluated: list[bytes] = field(default_factory=list)
    decisions: dict[bytes, str] = field(default_factory=dict)  # assertion id -> action recorded
    retried: list[bytes] = field(default_factory=list)
    sent: dict[bytes, list[SendResult]] = field(default_factory=dict)
    votes: dict[bytes, str] = field(default_factory=dict)
    settled: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_Judged = tuple[StoredAssertion, Evaluation | Exception]


def _drain(results: queue.SimpleQueue[_Judged]) -> list[_Judged]:
    """Everything the judging threads have finished so far, without waiting."""
    taken: list[_Judged] = []
    with contextlib.suppress(queue.Empty):
        while True:
            taken.append(results.get_nowait())
    return taken


def made_of(a: StoredAssertion) -> AssertionMade:
    return AssertionMade(
        assertion_id=a.assertion_id,
        domain_id=a.domain_id,
        claim=a.claim,
        asserter=a.asserter,
        callback_recipient=a.callback_recipient,
        escalation_manager=a.escalation_manager,
        caller=a.caller,
        expiration_time=a.expiration_time,
        currency=a.currency,
        bond=a.bond,
        identifier=a.identifier,
        tx_hash=a.tx_hash,
        log_index=a.log_index,
        block_number=a.block_number,
    )


class Daemon:
    def __init__(
        self,
        ctx: ChainContext,
        store: DisputerStore,
        watcher: Watcher,
        evaluator: Evaluator,
        actor: Actor,
        config: DisputerConfig,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.watcher = watcher
        self.evaluator = evaluator
        self.actor = actor
        self.config = config
        self.metrics = metrics or standard_metrics()
        self.attempts: dict[bytes, int] = {}  # evaluations so far of assertions not decided yet
        self._tokens: dict[str, Token] = {}
        self._now: tuple[float, int] | None = None  # (monotonic time read, chain time)
        self._reconciled = False
        self._warned_spoke = False

    @property
    def chain_id(self) -> int:
        return self.ctx.chain_id

    @property
    def address(self) -> str:
        return self.actor.sender.address

    # -- the loop ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.metrics.set("up", 1)
        log.info("disputer started", extra={"network": self.ctx.network.name, "account": self.address,
                                            "dry_run": self.config.dry_run})  # fmt: skip
        try:
            while not stop.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)
        finally:
            self.metrics.set("up", 0)
            log.info("disputer stopped")

    async def step(self) -> StepReport:
        report = StepReport()
        if not self._reconciled:
            for row in self.actor.reconcile_open():
                log.info("outbox row reconciled", extra={"kind": row.kind, "status": row.status})
            self._reconciled = True
        try:
            report.scan = self.watcher.poll()
        except AttestError as err:
            self.metrics.inc("polls_total", labels={"result": "error"})
            self.metrics.last_error = str(err)
            report.errors.append(str(err))
            log.warning("poll failed: %s", err)
            return report
        self.metrics.inc("polls_total", labels={"result": "ok"})
        self.metrics.inc("assertions_seen_total", len(report.scan.new))
        if report.scan.to_block is not None:
            self.metrics.set("checkpoint_block", report.scan.to_block)
        for step in (self._evaluate_all, self._resume_disputes, self._vote_all, self._settle_all):
            try:
                await step(report)
            except AttestError as err:
                report.errors.append(str(err))
                self.metrics.last_error = str(err)
                log.warning("%s failed: %s", step.__name__.strip("_"), err)
        self.metrics.set("pending_assertions", len(self.store.pending(self.chain_id)))
        if not report.errors:
            self.metrics.last_poll_ok = time.time()
            self.metrics.last_error = None
        return report

    # -- evaluating and deciding ---------------------------------------------------------------------------
    def undecided(self) -> list[StoredAssertion]:
        """Our assertions to decide: new ones, ones someone disputed before we judged them, and (in a real run)
        ones only a dry run decided: a dry run previews, so its decisions are judged again and acted on here."""
        return self.store.undecided(self.chain_id, redecide_dry_runs=not self.config.dry_run)

    async def _evaluate_all(self, report: StepReport) -> None:
        """Judge every undecided assertion, `concurrency` at a time, and handle the verdicts as they arrive.

        The pool is this step's own, sized to `concurrency`: asyncio's default executor has min(32, cpus + 4)
        threads, which capped judging at 6 at once on a 2-core host whatever the config said. The whole backlog
        is queued on it, so a thread starts the next judgement the moment one is done, while this loop records
        and sends. Verdicts are handled as they arrive, not after the slowest judgement of the step: whatever
        has arrived is one batch for `handle_many` (one commit for its decisions, one pipeline for its disputes).
        An evaluation that raises leaves its assertion undecided for the next step; the others are still
        handled, and the first error is raised once they all are.
        """
        todo = self.undecided()
        if not todo:
            return
        self._now = None  # chain time is read afresh each step (tests and idle hours move it)
        loop = asyncio.get_running_loop()
        results: queue.SimpleQueue[_Judged] = queue.SimpleQueue()
        arrived = asyncio.Event()

        def evaluate(stored: StoredAssertion) -> None:
            result: Evaluation | Exception
            try:
                result = self.evaluator.evaluate(made_of(stored))
            except Exception as err:  # re-raised on the loop, after the rest are handled
                result = err
            results.put((stored, result))
            loop.call_soon_threadsafe(arrived.set)

        failure: Exception | None = None
        waiting = len(todo)
        pool = ThreadPoolExecutor(min(self.config.concurrency, len(todo)), thread_name_prefix="judge")
        try:
            for stored in todo:
                pool.submit(evaluate, stored)
            while waiting:
                batch = _drain(results)
                if not batch:
                    arrived.clear()
                    if results.empty():
                        await arrived.wait()
                    continue
                waiting -= len(batch)
                judged: list[tuple[StoredAssertion, Evaluation]] = []
                for stored, result in batch:
                    if isinstance(result, Exception):
                        failure = result if failure is None else failure
                        continue
                    report.evaluated.append(stored.assertion_id)
                    judged.append((stored, result))
                self.handle_many(judged, report)
                await asyncio.sleep(0)  # a long backlog must not starve the loop's other tasks
        finally:
            # Normally every thread is idle by now; after an error or a cancel, queued judgements are dropped.
            pool.shutdown(wait=False, cancel_futures=True)
        if failure is not None:
            raise failure

    def handle(self, stored: StoredAssertion, evaluation: Evaluation, report: StepReport) -> PolicyDecision:
        """Decide on one evaluated assertion, record the decision and act on it."""
        return self.handle_many([(stored, evaluation)], report)[0]

    def handle_many(self, judged: list[tuple[StoredAssertion, Evaluation]], report: StepReport) -> list[PolicyDecision]:
        """Decide on evaluated assertions, record the decisions in one commit, then send the disputes together
        (one pipeline per bond currency: `Actor.dispute_many`). Returns the decisions in the order given."""
        for stored, _evaluation in judged:
            self.attempts[stored.assertion_id] = self.attempts.get(stored.assertion_id, 0) + 1
        decided = self._decide_many(judged)
        final: list[tuple[StoredAssertion, PolicyDecision, dict[str, float | str | None]]] = []
        with self.store.transaction():
            for (stored, evaluation), (_facts, decision) in zip(judged, decided, strict=True):
                aid = stored.assertion_id
                self.metrics.inc("judge_calls_total", evaluation.judge_calls)
                outcome = (
                    "failed_checks" if evaluation.failed else "undecided" if evaluation.score is None else "judged"
                )
                self.metrics.inc("evaluations_total", labels={"outcome": outcome})
                if outcome == "undecided":
                    self.metrics.inc("undecided_total")
                fields = {"assertion": "0x" + aid.hex(), "action": decision.action, "reason": decision.reason,
                          "score": evaluation.score, "record": evaluation.record_cid}  # fmt: skip
                if not decision.final:
                    report.retried.append(aid)
                    log.info("evaluation retried later", extra=fields)
                    continue
                self.record(stored, evaluation, decision)
                final.append((stored, decision, fields))
        # Logged once committed: a crash in between must not log a decision that a restart makes again.
        disputes: dict[str, list[tuple[StoredAssertion, PolicyDecision]]] = {}
        for stored, decision, fields in final:
            aid = stored.assertion_id
            if decision.action == "undecided":
                alert(log, self.metrics, "undecided", "no verdict: this assertion is not disputed", **fields)
            self.attempts.pop(aid, None)  # decided for good: a daemon that runs for months must not keep every id
            self.metrics.inc("decisions_total", labels={"action": decision.action})
            report.decisions[aid] = decision.action
            log.info("decided", extra=fields)
            if decision.action == "dispute" and not self.config.dry_run:
                disputes.setdefault(stored.currency.lower(), []).append((stored, decision))
        for group in disputes.values():
            results = self.actor.dispute_many(
                [(s.assertion_id, s.bond) for s, _d in group],
                currency=group[0][0].currency,
                approve=any(d.approve_first for _s, d in group),
            )
            for aid, result in results.items():
                self._sent(report, aid, "dispute", result)
        return [decision for _facts, decision in decided]

    def record(self, stored: StoredAssertion, evaluation: Evaluation, decision: PolicyDecision) -> Decision:
        verdict = evaluation.verdict
        action = decision.action
        assert action != "retry"
        return self.store.record_decision(
            stored.assertion_id,
            action=action,
            reason=decision.reason,
            score=None if verdict is None else verdict.score,
            calibrated=evaluation.score,
            rationale="" if verdict is None else verdict.rationale,
            judge=CHECKS_JUDGE if evaluation.failed else (verdict.judge if verdict else self.evaluator.judge.label),
            checks=evaluation.as_dict(),
            dry_run=self.config.dry_run,
        )

    def facts(self, stored: StoredAssertion, evaluation: Evaluation) -> Facts:
        """What the policy looks at for one assertion (see `_decide_many`)."""
        return self._decide_many([(stored, evaluation)])[0][0]

    def _decide_many(self, judged: list[tuple[StoredAssertion, Evaluation]]) -> list[tuple[Facts, PolicyDecision]]:
        """The facts of each evaluation and the policy's decision on them, in order.

        The chain and the wallet are read only for evaluations that want a dispute: for any other verdict the
        policy stops at whether the assertion is settled and how long it has left, and the store knows both (as
        of the last poll; the expiration never changes). That spares the reads for each of the many answers that
        stand; on that path the money fields are placeholders the policy never reaches, and `now` is the chain
        time read at most a second ago. For those that want one, the balance, the allowance and the budget are
        read once per currency, and each decision to dispute takes its bond off them before the next is made,
        so a batch never commits more than the wallet holds."""
        out: list[tuple[Facts, PolicyDecision]] = []
        committed: dict[str, int] = {}  # bond currency -> bonds of this batch's disputes so far
        wallet: dict[str, tuple[Token, int, int, int | None]] = {}  # currency -> token, balance, allowance, budget
        now: int | None = None
        for stored, evaluation in judged:
            known = self._known_facts(stored, evaluation)
            if not wants_dispute(known):
                out.append((known, decide(known)))
                continue
            key = stored.currency.lower()
            if key not in wallet:
                token = self._token(stored.currency)
                wallet[key] = (
                    token,
                    token.balance(self.address),
                    token.allowance(self.address, self.ctx.oov3.address),
                    self._budget_left(token, stored.currency),
                )
            token, balance, allowance, budget = wallet[key]
            spent = committed.get(key, 0)
            now = self.now() if now is None else now
            chain = self.ctx.oov3.get_assertion(stored.assertion_id)
            facts = replace(
                known,
                now=now,
                expiration_time=chain.expiration_time if chain.exists else stored.expiration_time,
                max_bond_per_dispute=self._units(token, self.config.amount("max_bond_per_dispute")),
                budget_left=None if budget is None else budget - spent,
                balance=balance - spent,
                allowance=max(0, allowance - spent),
                disputed_by=chain.disputer if chain.disputed else None,
                settled=chain.settled,
            )
            if facts.allowance >= stored.bond and not chain.disputed and not chain.settled:
                error = self.actor.dispute_static_error(stored.assertion_id)
                if error is not None:
                    facts = replace(facts, static_call_error=error)
            decision = decide(facts)
            if decision.action == "dispute":
                committed[key] = spent + stored.bond
            out.append((facts, decision))
        return out

    def _known_facts(self, stored: StoredAssertion, evaluation: Evaluation) -> Facts:
        return Facts(
            failed_checks=evaluation.failed_checks,
            score=evaluation.score,
            undecided_reason=evaluation.undecided_reason,
            unavailable=evaluation.unavailable is not None,
            threshold=self.config.threshold,
            now=self._recent_now(),
            expiration_time=stored.expiration_time,
            safety_margin_s=self.config.safety_margin_s,
            bond=stored.bond,
            max_bond_per_dispute=None,
            budget_left=None,
            balance=0,
            allowance=0,
            auto_approve=self.config.auto_approve,
            disputed_by=stored.disputed_by,
            settled=stored.status == "settled",
            attempts=self.attempts.get(stored.assertion_id, 1),
            max_attempts=self.config.attempts,
            dry_run=self.config.dry_run,
        )

    def _recent_now(self) -> int:
        # One block read a second, not one per answer; the policy compares it with margins of minutes.
        if self._now is None or time.monotonic() - self._now[0] > NOW_TTL_S:
            self._now = (time.monotonic(), self.now())
        return self._now[1]

    def _token(self, currency: str) -> Token:
        key = currency.lower()
        if key not in self._tokens:
            self._tokens[key] = Token(self.ctx.w3, currency)
        return self._tokens[key]

    def now(self) -> int:
        return int(self.ctx.w3.eth.get_block("latest")["timestamp"])

    @staticmethod
    def _units(token: Token, amount: Decimal | None) -> int | None:
        return None if amount is None else int(amount * (Decimal(10) ** token.decimals))

    def _budget_left(self, token: Token, currency: str) -> int | None:
        total = self._units(token, self.config.amount("total_budget"))
        if total is None:
            return None
        return total - self.bonds_at_stake(currency)

    def bonds_at_stake(self, currency: str) -> int:
        """Bonds of our disputes not settled yet (sent or about to be), in one currency."""
        at_stake = 0
        for a in self.store.assertions(self.chain_id, statuses=("evaluated", "disputed"), ours=None):
            if a.currency.lower() != currency.lower():
                continue
            if a.status == "disputed" and (a.disputed_by or "").lower() == self.address.lower():
                at_stake += a.bond
            elif a.status == "evaluated" and (d := self.store.decision(a.assertion_id)) is not None:
                at_stake += a.bond if d.action == "dispute" and not d.dry_run else 0
        return at_stake

    async def _resume_disputes(self, report: StepReport) -> None:
        """Decisions to dispute whose transaction has not landed (a crash, a timeout): act on them again.

        Dry-run decisions are left alone: `undecided` hands them to this step's evaluation, which re-judges and
        replaces them (acting on a stale preview could dispute what the judge no longer finds wrong)."""
        if self.config.dry_run:
            return
        for stored in self.store.assertions(self.chain_id, statuses=("evaluated",), ours=None):
            aid = stored.assertion_id
            decision = self.store.decision(aid)
            if decision is None or decision.action != "dispute" or decision.dry_run or aid in report.sent:
                continue
            # No shortcut on a "mined" row: a reorg may have removed that dispute before the watcher saw it. The
            # chain says whether it stands; the outbox reopens a mined row whose receipt is gone.
            chain = self.ctx.oov3.get_assertion(aid)
            if chain.disputed or chain.settled or chain.expiration_time <= self.now():
                continue
            allowance = Token(self.ctx.w3, stored.currency).allowance(self.address, self.ctx.oov3.address)
            result = self.actor.dispute(
                aid, currency=stored.currency, bond=stored.bond, approve_first=allowance < stored.bond
            )
            self._sent(report, aid, "dispute", result)

    def _sent(self, report: StepReport, aid: bytes, kind: str, result: SendResult) -> None:
        report.sent.setdefault(aid, []).append(result)
        self.metrics.inc("txs_total", labels={"kind": kind, "result": result.row.status})
        fields = {"assertion": "0x" + aid.hex(), "kind": kind, "status": result.row.status, "tx": result.tx_hash}
        if result.error is not None and result.row.status != "mined":
            alert(log, self.metrics, f"{kind}_failed", f"{kind} did not land: {result.error}", **fields)
        else:
            log.info("%s %s", kind, result.row.status, extra=fields)

    # -- voting --------------------------------------------------------------------------------------------
    async def _vote_all(self, report: StepReport) -> None:
        if not self.config.vote or self.config.dry_run:  # a dry run sends nothing, votes included
            return
        for stored in self.store.assertions(self.chain_id, statuses=("disputed",), ours=True):
            self.vote(stored, report)

    def vote(self, stored: StoredAssertion, report: StepReport) -> str:
        aid = stored.assertion_id
        decision = self.store.decision(aid)
        if decision is None or decision.dry_run:  # a dry run's verdict is re-judged before anything is staked on it
            return "not decided yet"
        price = vote_price(decision.checks.get("failed", []), decision.calibrated, self.config.threshold)
        if price is None:
            return "undecided: no vote"
        kind = self.ctx.network.oracle_kind
        if kind is OracleKind.SPOKE:
            if not self._warned_spoke:
                alert(log, self.metrics, "spoke_vote", "disputes here are voted on Ethereum's DVM; vote there")
                self._warned_spoke = True
            return "voted on Ethereum"
        chain = self.ctx.oov3.get_assertion(aid)
        if chain.settled:
            return "settled"
        if kind is OracleKind.MOCK:
            result = self.actor.push_price(chain, price)
            if result is None:
                outcome = "a price is already pushed"
            else:
                self._sent(report, aid, "vote_push", result)
                outcome = f"pushed {price}" if result.mined else f"push failed: {result.error}"
        else:
            outcome = self.actor.dvm_vote(chain, price)
        report.votes[aid] = outcome
        log.info("vote", extra={"assertion": "0x" + aid.hex(), "price": str(price), "outcome": outcome})
        return outcome

    # -- settling ------------------------------------------------------------------------------------------
    async def _settle_all(self, report: StepReport) -> None:
        if not self.config.settle or self.config.dry_run:
            return
        now = self.now()
        for stored in self.store.assertions(self.chain_id, statuses=("evaluated", "disputed"), ours=True):
            if stored.status == "evaluated" and stored.expiration_time > now:
                continue
            aid = stored.assertion_id
            chain = self.ctx.oov3.get_assertion(aid)
            if chain.settled:
                continue
            if chain.disputed and not self._resolved(stored, chain.assertion_time):
                continue
            if not chain.disputed and chain.expiration_time > now:
                continue
            result = self.actor.settle(aid)
            self._sent(report, aid, "settle", result)
            if result.mined:
                report.settled.append(aid)

    def _resolved(self, stored: StoredAssertion, assertion_time: int) -> bool:
        """Whether the oracle has a price for the dispute (so settleAssertion can go through)."""
        ancillary = ancillary_data(stored.assertion_id, stored.asserter)
        if self.ctx.network.oracle_kind is OracleKind.MOCK:
            oracle = self.ctx.w3.eth.contract(
                address=Web3.to_checksum_address(self.ctx.oracle_address()), abi=shipped("MockOracleAncillary").abi
            )
            return bool(oracle.functions.hasPrice(stored.identifier, assertion_time, ancillary).call())
        if self.ctx.network.oracle_kind is OracleKind.DVM:
            voting = VotingClient(self.ctx.w3, self.ctx.oracle_address())
            try:
                return voting.has_price(stored.identifier, assertion_time, ancillary, requester=self.ctx.oov3.address)
            except AttestError:
                return False
        return True  # elsewhere the static call of settleAssertion decides


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
    """A daemon wired from the config: the judge from `[llm]` (offline grounding-v1 without a key), the watcher,
    the evaluator over the configured IPFS readers, and the actor signing with `account`."""
    if judge is None:
        path = config.calibration_path(calibration_base or config_path().parent)
        calibration = CalibrationMap.load(path) if path is not None else None
        judge = judge_from_config(attest_config.llm, config.samples, calibration=calibration)
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
    ipfs = attest_config.ipfs_for(ctx.network.name)
    evaluator = Evaluator(
        judge,
        readers_for(attest_config, ctx.network.name),
        registry=ctx.registry if config.ours_only else None,
        timeout_s=ipfs.timeout_s,
    )
    actor = Actor(ctx, store, ctx.sender(account))
    return Daemon(ctx, store, watcher, evaluator, actor, config, metrics=metrics)


def _is_llm_attest_claim(claim: bytes) -> bool:
    try:
        parse_claim(claim)
    except ClaimError:
        return False
    return True
