"""Judging on a job queue: the leader defers judge jobs, worker processes run them, the leader decides.

The engine is procrastinate: its jobs are rows on the PostgreSQL server that already holds the shared state (in
their own schema, `judge_queue`), so a multi-machine setup needs no second server, and it speaks psycopg 3 like
attest/storage. What it gives us:
- late acknowledgement: a job is `doing` while a worker runs it and is finished only after the task returns; a
  worker killed mid-job leaves its job `doing` with a heartbeat that stops, and the leader puts every job of a
  worker silent for `STALLED_AFTER_S` back in the queue (`recover_stalled`), for another worker to redo;
- retries with exponential backoff (`RETRY`) for a job that raises; one that fails them all is deleted, and the
  leader defers a fresh one at a later poll, as the daemon without a queue judges again at its next step;
- one job per assertion at a time: its lock is the assertion id, and the leader defers only for assertions
  without a job waiting or running.

A job is (assertion id, sample) and its result is a judgement in the disputer's store (store/judgements.py): a
job whose judgement is kept does nothing, so a job run twice judges once. Each job is time-limited
(`TIME_LIMIT_S`); one past it raises, and is retried. The decision stays the leader's (daemon.py): it reads the
judgements, decides and records each once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import procrastinate
import psycopg
from procrastinate.exceptions import ConnectorException
from procrastinate.job_context import JobContext
from procrastinate.schema import SchemaManager

from attest.errors import DisputerStateError, StorageError
from attest.storage import Postgres
from attest.storage.postgres import CONNECT_TIMEOUT_S, PASSWORD_ENV, connect, lock_key, one_line
from disputer.evaluate import Evaluator, evaluation_json
from disputer.store import DisputerStore, made_of

log = logging.getLogger(__name__)
SCHEMA = "judge_queue"  # procrastinate's tables, types and functions, beside the stores' schemas
QUEUE = "judge"
TASK = "disputer.judge"
HEARTBEAT_S = 2.0  # how often a worker says it is alive
STALLED_AFTER_S = 15.0  # a worker silent this long is taken for dead: its jobs go back to the queue
# Longer than a judgement takes with every source and model timing out in turn (the evaluator's own timeouts end
# those first): a job still running then is stuck, and its retry may find a source that answers.
TIME_LIMIT_S = 600.0
# A job that raises is run again after 2, 4 and 8 s; after the fourth failure it is dropped (see the module doc).
# (`max_attempts` counts the retries: a job runs at most max_attempts + 1 times.)
RETRY = procrastinate.RetryStrategy(max_attempts=3, exponential_wait=2)
LOCK_PREFIX = "judge:"  # then the assertion id in hex: one job of an assertion runs at a time
_WORKER = "judge_worker"  # the key of the JudgeWorker in a job's context


def job_lock(assertion_id: bytes) -> str:
    return LOCK_PREFIX + assertion_id.hex()


def install_schema(where: Postgres) -> None:
    """Create the queue's schema on first use, one starter at a time (a leader and its workers start together)."""
    conn = connect(where, what="judge queue")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(SCHEMA, "install"),))
        found = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.procrastinate_jobs",)).fetchone()
        if found is None or found[0] is None:
            with conn.transaction():
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(f"SET LOCAL search_path TO {SCHEMA}")
                conn.execute(SchemaManager.get_schema())
            log.info("judge queue created", extra={"schema": SCHEMA})
    except psycopg.Error as err:
        raise StorageError(
            f"cannot set up the judge queue at {where}: {one_line(err)}; check the user's rights"
        ) from None
    finally:
        conn.close()


def judge_app(where: Postgres) -> procrastinate.App:
    """The queue's procrastinate app on `where` (opened by the caller, in its event loop)."""
    kwargs: dict[str, Any] = {
        "options": f"-c search_path={SCHEMA}",
        "application_name": "llm-attest",
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    password = os.environ.get(PASSWORD_ENV)
    if password:
        kwargs["password"] = password
    # A leader or worker needs few connections: the poll, the heartbeat, the listener and its jobs.
    connector = procrastinate.PsycopgConnector(conninfo=where.url, kwargs=kwargs, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.task(name=TASK, queue=QUEUE, pass_context=True, retry=RETRY)(_judge_job)
    return app


async def _judge_job(context: JobContext, assertion: str, sample: int) -> None:
    worker: JudgeWorker = context.additional_context[_WORKER]
    await worker.judge(bytes.fromhex(assertion), sample)


class JudgeWorker:
    """What a worker process judges with: the disputer's store (on the server) and an evaluator."""

    def __init__(
        self, store: DisputerStore, evaluator: Evaluator, *, now: Callable[[], int], safety_margin_s: int
    ) -> None:
        self.store = store
        self.evaluator = evaluator
        self.now = now
        self.safety_margin_s = safety_margin_s
        self._store_lock = threading.Lock()  # one connection: one thread on it at a time

    def context(self) -> dict[str, Any]:
        return {_WORKER: self}

    async def judge(self, assertion_id: bytes, sample: int) -> None:
        fields = {"assertion": "0x" + assertion_id.hex(), "sample": sample}
        if await asyncio.to_thread(self._locked, self.store.has_judgement, assertion_id, sample):
            log.info("already judged", extra=fields)
            return
        stored = await asyncio.to_thread(self._locked, self.store.get, assertion_id)
        if stored is None:  # the leader keeps an assertion before it defers its job, on the same server
            raise DisputerStateError(f"assertion {fields['assertion']} is not in the disputer's state")
        now = await asyncio.to_thread(self.now)

        def evaluate() -> str:
            evaluation = self.evaluator.evaluate(
                made_of(stored), left_s=stored.expiration_time - now, safety_margin_s=self.safety_margin_s
            )
            return evaluation_json(evaluation)

        # Past the limit the job raises and is retried; the abandoned thread's result is never kept.
        judged = await asyncio.wait_for(asyncio.to_thread(evaluate), timeout=TIME_LIMIT_S)
        kept = await asyncio.to_thread(self._locked, self.store.save_judgement, assertion_id, sample, judged)
        log.info("judged" if kept else "judged twice: the first judgement stays", extra=fields)

    def _locked(self, call: Callable[..., Any], *args: Any) -> Any:
        with self._store_lock:
            return call(*args)


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # jobs deferred and not started (or queued again)
    running: int
    oldest_waiting_s: float  # since the oldest waiting job was deferred; 0 when none waits


# One statement: the jobs of the judge queue waiting and running, and the age of the oldest waiting one.
_STATS = """
SELECT count(*) FILTER (WHERE j.status = 'todo') AS waiting,
       count(*) FILTER (WHERE j.status = 'doing') AS running,
       coalesce(extract(epoch FROM now() - min(e.at) FILTER (WHERE j.status = 'todo')), 0)::float AS oldest
FROM procrastinate_jobs j
LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
WHERE j.queue_name = %(queue)s AND j.status IN ('todo', 'doing')
"""


class JudgeQueue:
    """The leader's side: defer judge jobs, see which assertions have one, send stalled jobs back. A queue that
    does not answer raises `StorageError` (one line): the daemon reports it and its next poll tries again."""

    def __init__(self, app: procrastinate.App) -> None:
        self.app = app

    async def recover_stalled(self) -> int:
        """Put the jobs of workers silent for `STALLED_AFTER_S` back in the queue; how many."""
        manager = self.app.job_manager
        with _answering():
            stalled = list(await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER_S))
            for job in stalled:
                await manager.retry_job(job)
                log.warning("judge job of a silent worker queued again", extra={"job": job.id, "lock": job.lock})
        return len(stalled)

    async def busy_assertions(self) -> set[bytes]:
        """The assertions with a job waiting or running."""
        manager = self.app.job_manager
        found: set[bytes] = set()
        with _answering():
            for status in ("todo", "doing"):
                for job in await manager.list_jobs_async(queue=QUEUE, status=status):
                    if job.lock and job.lock.startswith(LOCK_PREFIX):
                        found.add(bytes.fromhex(job.lock.removeprefix(LOCK_PREFIX)))
        return found

    async def stats(self) -> QueueStats:
        """How deep the queue is and how long its oldest waiting job has waited (for /metrics)."""
        with _answering():
            row = await self.app.connector.execute_query_one_async(_STATS, queue=QUEUE)
        return QueueStats(int(row["waiting"]), int(row["running"]), float(row["oldest"]))

    async def defer(self, wanted: Iterable[tuple[bytes, int]]) -> int:
        """One job per (assertion id, sample), in one statement; how many."""
        task = self.app.tasks[TASK]
        jobs = [
            task.configure(lock=job_lock(aid)).make_new_job(assertion=aid.hex(), sample=sample)
            for aid, sample in wanted
        ]
        if jobs:
            with _answering():
                await self.app.job_manager.batch_defer_jobs_async(jobs)
        return len(jobs)


@contextmanager
def _answering() -> Iterator[None]:
    """procrastinate's database errors as our one-line error (its own carries the driver's as its cause)."""
    try:
        yield
    except ConnectorException as err:
        cause = err.__cause__ or err
        raise StorageError(f"the judge queue did not answer: {one_line(cause)}; the next poll tries again") from None
