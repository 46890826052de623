"""The disputer's loop: poll, judge, decide, and hand the verdicts to the jobs; it reports what they sent.

One `step()` is one pass: the watcher's poll, then every undecided assertion of ours evaluated (judge calls in
threads, at most `concurrency` at once), decided by the pure policy and recorded once, then the jobs
(disputer/jobs/): disputes sent through the outbox, votes cast on disputed assertions, due assertions settled.
`run()` repeats `step()` every `poll_interval_s` until its stop event is set, or until the state cannot be
written. With a judge queue (`disputer run --workers`, disputer/judgequeue.py) the judging goes to worker
processes instead: a step defers their jobs and decides on the judgements they have kept. The SQLite store and
every transaction stay on the loop's thread: only judging, which is slow and touches no state, runs elsewhere.
The wiring from the config is disputer/wiring.py.

Restarts: open outbox rows are reconciled first; a decision to dispute whose transaction never landed is acted
on again (the outbox makes that idempotent); assertions made while the daemon was down are found by the
watcher from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from attest.connect import ChainContext
from attest.errors import AttestError, RpcUnavailable, StateUnwritable, StorageError
from attest.oracle import Oracle, oracle_for
from attest.storage import DATABASE_ERRORS, DatabaseFailure
from disputer.actions import Actor, SendResult
from disputer.config import DisputerConfig
from disputer.evaluate import Evaluation, Evaluator, evaluation_of
from disputer.jobs.dispute import Judged, decide_batch, resume_disputes, send_disputes
from disputer.jobs.evidence import publish_evidence_due
from disputer.jobs.settle import settle_due
from disputer.jobs.vote import VOTED_ELSEWHERE, vote_on
from disputer.policy import Facts, PolicyDecision
from disputer.store import Decision, DisputerStore, StoredAssertion, made_of
from disputer.telemetry import Metrics, alert, standard_metrics
from disputer.wallet import Wallet
from disputer.watcher import ScanResult, Watcher

if TYPE_CHECKING:  # procrastinate is loaded only when judging goes to a queue
    from disputer.judgequeue import JudgeQueue

log = logging.getLogger(__name__)
CHECKS_JUDGE = "deterministic-checks"
JUDGEMENT_CHECK_S = 0.1  # with a judge queue: how often a leader between polls looks for judgements kept
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


_Finished = tuple[StoredAssertion, Evaluation | Exception]

# SQLite's words when the state cannot take a write: no later poll fixes these, only the operator.
_UNWRITABLE = ("database or disk is full", "readonly database", "disk I/O error")
# What a pass reports and survives (unless it means the state cannot be written): our errors and a database's.
_STEP_ERRORS: tuple[type[Exception], ...] = (AttestError, *DATABASE_ERRORS)


def _drain(results: queue.SimpleQueue[_Finished]) -> list[_Finished]:
    """Everything the judging threads have finished so far, without waiting."""
    taken: list[_Finished] = []
    with contextlib.suppress(queue.Empty):
        while True:
            taken.append(results.get_nowait())
    return taken


class Daemon:
    def __init__(
        self,
        ctx: ChainContext,
        store: DisputerStore,
        watcher: Watcher,
        evaluator: Evaluator,
        actor: Actor,
        wallet: Wallet,
        config: DisputerConfig,
        *,
        metrics: Metrics | None = None,
        judge_queue: JudgeQueue | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.watcher = watcher
        self.evaluator = evaluator
        self.actor = actor
        self.wallet = wallet
        self.config = config
        self.metrics = metrics or standard_metrics()
        self.judge_queue = judge_queue  # None: judged in this process's threads
        self.samples_handled: dict[bytes, int] = {}  # with a queue: the last judgement decided on, per assertion
        self.attempts: dict[bytes, int] = {}  # evaluations so far of assertions not decided yet
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
                await self._pause(stop)
        finally:
            self.metrics.set("up", 0)
            log.info("disputer stopped")

    async def _pause(self, stop: asyncio.Event) -> None:
        """Until the next poll, or `stop`. With a judge queue, also until a worker keeps a judgement: its decision
        then waits `JUDGEMENT_CHECK_S` at most, not the rest of a poll."""
        if self.judge_queue is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)
            return
        deadline = time.monotonic() + self.config.poll_interval_s
        kept = self._judgements_kept()
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(left, JUDGEMENT_CHECK_S))
            if self._judgements_kept() > kept:
                return

    def _judgements_kept(self) -> int:
        try:
            return self.store.judgements_kept()
        except _STEP_ERRORS:  # the state's server away: the next pass reports it
            return -1

    async def step(self) -> StepReport:
        """One pass. Chain, RPC and model errors are reported and the next pass tries again, and so is a state
        server that went away mid-pass; a state that cannot be written raises `StateUnwritable`, which ends
        `run()`: no later pass could record what it does."""
        try:
            return await self._step()
        except _STEP_ERRORS as err:
            stop = self._unwritable(err)
            if stop is not None:
                alert(log, self.metrics, "state_unwritable", str(stop))
                raise stop from err
            if not isinstance(err, DatabaseFailure | StorageError):
                raise
            # A PostgreSQL restart, fail-over or outage (a statement failed, or reconnecting did): the statement
            # that met it failed with its transaction whole, so nothing of this pass was half-recorded; the next
            # pass reconnects and takes up the rest.
            report = StepReport()
            report.errors.append(f"the disputer's state at {self.store.path} is unreachable: {err}")
            self.metrics.last_error = report.errors[0]
            log.warning("pass failed: %s; the next pass tries again", report.errors[0])
            return report

    async def _step(self) -> StepReport:
        report = StepReport()
        if not self._reconciled:
            for row in self.actor.reconcile_open():
                log.info("outbox row reconciled", extra={"kind": row.kind, "status": row.status})
            self._reconciled = True
        try:
            report.scan = self.watcher.poll()
        except AttestError as err:
            if self._unwritable(err):
                raise
            self.metrics.inc("polls_total", labels={"result": "error"})
            self.metrics.last_error = self.metrics.poll_error = _for_the_log(err)
            report.errors.append(_for_the_log(err))
            log.warning("poll failed: %s", _for_the_log(err))
            return report
        self.metrics.poll_error = None
        self.metrics.inc("polls_total", labels={"result": "ok"})
        self.metrics.inc("assertions_seen_total", len(report.scan.new))
        if report.scan.to_block is not None:
            self.metrics.set("checkpoint_block", report.scan.to_block)
        jobs = (self._evaluate_all, self._resume_disputes, self._publish_evidence, self._vote_all, self._settle_all)
        for job in jobs:
            try:
                await job(report)
            except AttestError as err:
                if self._unwritable(err):
                    raise
                report.errors.append(_for_the_log(err))
                self.metrics.last_error = _for_the_log(err)
                log.warning("%s failed: %s", job.__name__.strip("_"), _for_the_log(err))
        self.metrics.set("pending_assertions", len(self.store.pending(self.chain_id)))
        if not report.errors:
            self.metrics.last_poll_ok = time.time()
            self.metrics.last_error = None
        return report

    def _unwritable(self, err: Exception) -> StateUnwritable | None:
        """The error as a reason to stop, when the state cannot take a write: SQLite's own error reaching the
        loop (the store could not even roll back cleanly), or the store's error carrying SQLite's words for a full
        disk or a read-only file. None for errors a later pass may not meet."""
        if isinstance(err, StateUnwritable):
            return err
        text = str(err)
        # A PostgreSQL failure reaching the loop is most often a lost connection, which the next pass reopens.
        if not isinstance(err, sqlite3.Error) and not any(words in text for words in _UNWRITABLE):
            return None
        return StateUnwritable(
            f"the disputer stopped: it cannot write its state at {self.store.path} ({text}). Check that the disk has "
            "free space and the file is writable, then start it again: what was in flight is resumed from the outbox"
        )

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
        if self.judge_queue is not None:
            await self._judge_on_queue(self.judge_queue, report)
            return
        todo = self.undecided()
        if not todo:
            return
        self._now = None  # chain time is read afresh each step (tests and idle hours move it)
        now, margin = self._recent_now(), self.config.safety_margin_s
        loop = asyncio.get_running_loop()
        results: queue.SimpleQueue[_Finished] = queue.SimpleQueue()
        arrived = asyncio.Event()

        def evaluate(stored: StoredAssertion) -> None:
            result: Evaluation | Exception
            try:
                # A batch that cannot be judged before its margin is not started (policy.batch_out_of_time).
                result = self.evaluator.evaluate(
                    made_of(stored), left_s=stored.expiration_time - now, safety_margin_s=margin
                )
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
                judged: list[Judged] = []
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

    async def _judge_on_queue(self, queue: JudgeQueue, report: StepReport) -> None:
        """Decide on the judgements workers have kept, and defer a job for each undecided assertion that has
        neither a judgement not decided on yet nor a job waiting or running (disputer/judgequeue.py).

        Sample n+1 of an assertion is asked for only once the policy said "retry" on sample n; a restarted leader
        starts by deciding on the newest judgement kept, as the daemon without a queue judges again after a
        restart."""
        stats = await queue.stats()  # as this pass finds it: its own jobs show at the next
        self.metrics.set("judge_jobs", stats.waiting, {"status": "waiting"})
        self.metrics.set("judge_jobs", stats.running, {"status": "running"})
        self.metrics.set("judge_oldest_waiting_seconds", stats.oldest_waiting_s)
        todo = self.undecided()
        if not todo:
            return
        self._now = None  # chain time is read afresh each step (tests and idle hours move it)
        await queue.recover_stalled()
        busy = (
            await queue.busy_assertions()
        )  # read before the judgements: a job finishing in between is only deferred twice
        kept = self.store.latest_judgements(s.assertion_id for s in todo)
        judged: list[Judged] = []
        samples: dict[bytes, int] = {}
        wanted: list[tuple[bytes, int]] = []
        for stored in todo:
            aid = stored.assertion_id
            handled = self.samples_handled.get(aid, -1)
            found = kept.get(aid)
            if found is not None and found[0] > handled:
                judged.append((stored, evaluation_of(found[1])))
                samples[aid] = found[0]
            elif aid not in busy:
                wanted.append((aid, handled + 1))
        if wanted:
            await queue.defer(wanted)
            log.info("judge jobs deferred", extra={"jobs": len(wanted)})
        if not judged:
            return
        report.evaluated.extend(stored.assertion_id for stored, _evaluation in judged)
        self.handle_many(judged, report)
        retried = set(report.retried)
        for aid, sample in samples.items():
            if aid in retried:
                self.samples_handled[aid] = sample
            else:  # decided for good
                self.samples_handled.pop(aid, None)

    def handle(self, stored: StoredAssertion, evaluation: Evaluation, report: StepReport) -> PolicyDecision:
        """Decide on one evaluated assertion, record the decision and act on it."""
        return self.handle_many([(stored, evaluation)], report)[0]

    def handle_many(self, judged: list[Judged], report: StepReport) -> list[PolicyDecision]:
        """Decide on evaluated assertions, record the decisions in one commit, then hand the disputes to the
        dispute job together (one pipeline per bond currency). Returns the decisions in the order given."""
        for stored, _evaluation in judged:
            self.attempts[stored.assertion_id] = self.attempts.get(stored.assertion_id, 0) + 1
        decided = self._decide_batch(judged)
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
                    if evaluation.unavailable is not None and self.attempts[aid] == self.config.attempts:
                        # Once, after as many tries as a judge fault gets: the README's alert and metric, while the
                        # fetch goes on each poll (an IPFS outage says nothing about the answer).
                        alert(log, self.metrics, "record_unavailable", "record cannot be fetched", **fields)
                    else:
                        log.info("evaluation retried later", extra=fields)
                    continue
                self.record(stored, evaluation, decision)
                final.append((stored, decision, fields))
        # Logged once committed: a crash in between must not log a decision that a restart makes again.
        disputes: list[tuple[StoredAssertion, PolicyDecision]] = []
        for stored, decision, fields in final:
            aid = stored.assertion_id
            if decision.action == "undecided":
                alert(log, self.metrics, "undecided", "no verdict: this assertion is not disputed", **fields)
            self.attempts.pop(aid, None)  # decided for good: a daemon that runs for months must not keep every id
            self.metrics.inc("decisions_total", labels={"action": decision.action})
            report.decisions[aid] = decision.action
            log.info("decided", extra=fields)
            if decision.action == "dispute" and not self.config.dry_run:
                disputes.append((stored, decision))
        for aid, result in send_disputes(self.actor, disputes).items():
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
        """What the policy looks at for one assertion (see `decide_batch`)."""
        return self._decide_batch([(stored, evaluation)])[0][0]

    def _decide_batch(self, judged: list[Judged]) -> list[tuple[Facts, PolicyDecision]]:
        return decide_batch(
            judged, config=self.config, attempts=self.attempts, recent_now=self._recent_now(), read_now=self.now,
            wallet=self.wallet, oov3=self.ctx.oov3, actor=self.actor,
        )  # fmt: skip

    def _recent_now(self) -> int:
        # One block read a second, not one per answer; the policy compares it with margins of minutes.
        if self._now is None or time.monotonic() - self._now[0] > NOW_TTL_S:
            self._now = (time.monotonic(), self.now())
        return self._now[1]

    def now(self) -> int:
        return int(self.ctx.w3.eth.get_block("latest")["timestamp"])

    @cached_property
    def oracle(self) -> Oracle:
        # Looked up on first use: a spoke network, or a daemon that never votes or settles a dispute, needs no
        # Finder read at start.
        return oracle_for(self.ctx)

    def _sent(self, report: StepReport, aid: bytes, kind: str, result: SendResult) -> None:
        report.sent.setdefault(aid, []).append(result)
        status = "already" if result.already else result.row.status  # done by this account from elsewhere
        self.metrics.inc("txs_total", labels={"kind": kind, "result": status})
        fields = {"assertion": "0x" + aid.hex(), "kind": kind, "status": status, "tx": result.tx_hash}
        if result.error is not None and result.row.status != "mined":
            alert(log, self.metrics, f"{kind}_failed", f"{kind} did not land: {result.error}", **fields)
        else:
            log.info("%s %s", kind, result.row.status, extra=fields)

    # -- the jobs --------------------------------------------------------------------------------------------
    async def _resume_disputes(self, report: StepReport) -> None:
        if self.config.dry_run:
            return
        sent = resume_disputes(
            self.store, self.actor, self.wallet, self.ctx.oov3, chain_id=self.chain_id, now=self.now(),
            skip=frozenset(report.sent),
        )  # fmt: skip
        for aid, result in sent.items():
            self._sent(report, aid, "dispute", result)

    async def _publish_evidence(self, report: StepReport) -> None:
        if self.config.dry_run or self.ctx.registry is None:  # no registry to announce on: the decision names them
            return
        sent = publish_evidence_due(
            self.store, self.actor, self.evaluator.readers, chain_id=self.chain_id, threshold=self.config.threshold
        )
        for aid, result in sent.items():
            self._sent(report, aid, "evidence", result)

    async def _vote_all(self, report: StepReport) -> None:
        if not self.config.vote or self.config.dry_run:  # a dry run sends nothing, votes included
            return
        for stored in self.store.assertions(self.chain_id, statuses=("disputed",), ours=True):
            self.vote(stored, report)

    def vote(self, stored: StoredAssertion, report: StepReport) -> str:
        outcome = vote_on(
            stored, store=self.store, actor=self.actor, oracle=self.oracle, oov3=self.ctx.oov3,
            threshold=self.config.threshold,
        )  # fmt: skip
        if outcome.text == VOTED_ELSEWHERE and not self._warned_spoke:
            alert(log, self.metrics, "spoke_vote", "disputes here are voted on Ethereum's DVM; vote there")
            self._warned_spoke = True
        if outcome.sent is not None:
            self._sent(report, stored.assertion_id, "vote_push", outcome.sent)
        if outcome.cast:
            report.votes[stored.assertion_id] = outcome.text
            fields = {"assertion": "0x" + stored.assertion_id.hex(), "price": str(outcome.price)}
            log.info("vote", extra={**fields, "outcome": outcome.text})
        return outcome.text

    async def _settle_all(self, report: StepReport) -> None:
        if not self.config.settle or self.config.dry_run:
            return
        sent = settle_due(self.store, self.actor, self.oracle, self.ctx.oov3, chain_id=self.chain_id, now=self.now())
        for aid, result in sent.items():
            self._sent(report, aid, "settle", result)
            if result.mined:
                report.settled.append(aid)


def _for_the_log(err: AttestError) -> str:
    """An error as the daemon's operator reads it: an RPC outage ends with what the daemon does about it, not with
    the advice `attest` gives its user."""
    if isinstance(err, RpcUnavailable):
        return f"{err.problem}; check the node: the next poll tries again, and the outbox reconciles what was sent"
    return str(err)
