"""Judging on the job queue: `disputer run --workers N` as the leader, `disputer worker` processes running the judge
jobs, on the devnet with real records, the disputer's state and procrastinate's queue on a real PostgreSQL server,
and the real OpenAI SDK against a fake model server. A worker killed with SIGKILL mid-job has its job redone by
another; every wrong answer is disputed exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from procrastinate.jobs import Job

from attest.connect import connect
from attest.errors import StorageError
from attest.storage import Postgres
from attest.storage.postgres import connect as connect_postgres
from attest.verify import Check
from disputer.evaluate import Evaluation, evaluation_json, evaluation_of
from disputer.judge import Verdict
from disputer.judgequeue import QUEUE, STALLED_AFTER_S, JudgeQueue, QueueStats, install_schema, judge_app
from disputer.store import DisputerStore
from tests.conftest import LocalChain
from tests.test_disputer_cli_run import (
    DISPUTER,
    START_BOUND_S,
    fake_verdict,
    kb_home,
    log_lines,
    wait_for,
    write_config,
)
from tests.test_disputer_daemon import WRONG, Env

__all__ = ["kb_home"]  # the fixture, imported for these tests


def queue_config(env: Env, url: str) -> None:
    write_config(env, f'poll_interval_s = 0.3\n\n[storage]\nurl = "{url}"\n')


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [str(DISPUTER), *args], env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def decisions(url: str, aids: list[bytes]) -> dict[bytes, str]:
    with DisputerStore(Postgres(url)) as store:
        return {aid: d.action for aid in aids if (d := store.decision(aid)) is not None}


def test_wrong_answers_are_judged_by_local_workers_and_disputed_once(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str
) -> None:
    with fake_verdict(0.05) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        queue_config(env, postgres_url)
        made = [env.attest(f"{WRONG} ({i})") for i in range(3)]
        aids = [m.assertion_id for m in made]
        log = tmp_path / "disputer.log"
        leader = start(["run", "--workers", "2"], log)
        try:
            decided = lambda: len(decisions(postgres_url, aids)) == len(aids)  # noqa: E731
            wait_for("three decisions", decided, leader, log, START_BOUND_S + 60)
            wait_for("three disputes", lambda: len(env.disputes()) == len(aids), leader, log, 60)
            # One worker may judge all three before the other has loaded: both are up before the leader stops.
            both = lambda: [line["msg"] for line in log_lines(log)].count("judge worker started") == 2  # noqa: E731
            wait_for("both workers", both, leader, log, START_BOUND_S)
        finally:
            code = stop(leader)
        assert code == 0, log.read_text()[-3000:]
    lines = log_lines(log)
    assert [line["msg"] for line in lines].count("judge worker started") == 2
    assert [line["msg"] for line in lines].count("judge worker stopped") == 2  # stopped with their leader
    assert sorted(env.disputes()) == sorted(aids)  # each once
    assert decisions(postgres_url, aids) == dict.fromkeys(aids, "dispute")
    with DisputerStore(Postgres(postgres_url)) as store:  # judged by the workers, through the queue
        kept = store.latest_judgements(aids)
    assert sorted(kept) == sorted(aids) and {sample for sample, _ in kept.values()} == {0}
    assert len(fake.requests) == len(aids)  # one judge call each: no job was run twice


def test_a_worker_killed_mid_job_has_its_job_redone_by_another_and_the_decision_recorded_once(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str
) -> None:
    # The judge's first answer takes 120 s: the first worker is killed while it waits for it.
    with fake_verdict(0.05, delays=(120.0,)) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        queue_config(env, postgres_url)
        made = env.attest(WRONG)
        log = tmp_path / "disputer.log"
        leader = start(["run", "--workers", "0"], log)  # the leader alone; the workers are started here
        first = start(["worker"], log)
        second: subprocess.Popen[bytes] | None = None
        try:
            wait_for("the first worker's judge call", lambda: len(fake.requests) >= 1, first, log, START_BOUND_S + 60)
            second = start(["worker"], log)
            started = lambda: [line["msg"] for line in log_lines(log)].count("judge worker started") == 2  # noqa: E731
            wait_for("the second worker", started, second, log, START_BOUND_S)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            # Redone once the first worker's heartbeat is older than STALLED_AFTER_S.
            decided = lambda: made.assertion_id in decisions(postgres_url, [made.assertion_id])  # noqa: E731
            wait_for("the decision", decided, leader, log, STALLED_AFTER_S + 90)
            wait_for("the dispute", lambda: env.disputes() == [made.assertion_id], leader, log, 60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            codes = [stop(p) for p in (leader, second) if p is not None]
    assert codes == [0, 0], log.read_text()[-3000:]
    assert first.returncode == -signal.SIGKILL
    messages = [line["msg"] for line in log_lines(log)]
    assert "judge job of a silent worker queued again" in messages
    assert len(fake.requests) == 2  # the killed worker's call, and the second worker's
    assert env.disputes() == [made.assertion_id]  # disputed once
    assert decisions(postgres_url, [made.assertion_id]) == {made.assertion_id: "dispute"}


@pytest.mark.parametrize("args", [["worker"], ["run", "--workers", "2"]], ids=["worker", "run --workers"])
def test_queue_commands_need_a_postgresql_server(kb_home: LocalChain, args: list[str]) -> None:
    done = subprocess.run([str(DISPUTER), *args], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "needs a PostgreSQL server for its judge queue: set [storage] url" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_judgement_is_kept_and_read_back_whole() -> None:
    verdict = Verdict(
        score=0.2, rationale="wrong wick", samples=(0.2, 0.1, 0.3), judge="openai:gpt-fake", template="judge@2",
        template_sha256="ab" * 32, undecided_reason=None, latency_ms=12.5, calibrated_score=0.25,
    )  # fmt: skip
    evaluation = Evaluation(
        assertion_id=b"\x07" * 32, record_cid="bafy", checks=(Check("schema", True, "ok"), Check("corpus", None, "no")),
        verdict=verdict, unavailable=None, latency_ms=40.0, judge_calls=3, extra={"batch": {"count": 2}},
    )  # fmt: skip
    assert evaluation_of(evaluation_json(evaluation)) == evaluation
    undecided = Evaluation(assertion_id=b"\x08" * 32, record_cid=None, checks=(), verdict=None, unavailable="down")
    assert evaluation_of(evaluation_json(undecided)) == undecided


def test_a_queue_that_does_not_answer_is_one_line_for_the_next_poll(postgres_url: str) -> None:
    where = Postgres(postgres_url)
    install_schema(where)
    install_schema(where)  # a second starter finds it made
    queue = JudgeQueue(judge_app(where))

    async def poll_twice() -> tuple[set[bytes], str]:
        async with queue.app.open_async():
            assert await queue.stats() == QueueStats(0, 0, 0.0)
            await queue.defer([(b"\x09" * 32, 0)])
            busy = await queue.busy_assertions()
            await asyncio.sleep(0.2)
            stats = await queue.stats()  # what /metrics shows: one job waiting, for at least the 0.2 s slept
            assert (stats.waiting, stats.running) == (1, 0) and 0.2 <= stats.oldest_waiting_s < 60
            with connect_postgres(where, what="test") as conn:  # the queue's tables gone under it
                conn.execute("DROP SCHEMA judge_queue CASCADE")
            with pytest.raises(StorageError) as failed:
                await queue.busy_assertions()
            return busy, str(failed.value)

    busy, message = asyncio.run(poll_twice())
    assert busy == {b"\x09" * 32}
    assert message.startswith("the judge queue did not answer: ") and message.endswith("the next poll tries again")
    assert "\n" not in message and "procrastinate_jobs" in message


def test_a_job_that_raises_is_retried_later_then_dropped_with_one_error_line(
    kb_home: LocalChain, tmp_path: Path, postgres_url: str
) -> None:
    (kb_home.home / "config.toml").write_text(f'[disputer]\nsamples = 1\n\n[storage]\nurl = "{postgres_url}"\n')
    where = Postgres(postgres_url)
    install_schema(where)
    DisputerStore(where).close()  # the state's schema, as the leader makes it
    unknown = b"\x0a" * 32  # not in the state: its job raises
    queue = JudgeQueue(judge_app(where))

    async def jobs() -> list[Job]:
        async with queue.app.open_async():
            return list(await queue.app.job_manager.list_jobs_async(queue=QUEUE))

    async def defer() -> None:
        async with queue.app.open_async():
            await queue.defer([(unknown, 0)])

    seen: list[tuple[str, int, bool]] = []  # (status, attempts, scheduled for later) as polled

    def gone() -> bool:
        found = asyncio.run(jobs())
        seen.extend((str(j.status), j.attempts, j.scheduled_at is not None) for j in found)
        return not found

    log = tmp_path / "worker.log"
    worker = start(["worker", "--concurrency", "2"], log)
    try:
        started = lambda: "judge worker started" in [line["msg"] for line in log_lines(log)]  # noqa: E731
        wait_for("the worker", started, worker, log, START_BOUND_S)
        asyncio.run(defer())
        wait_for("the job dropped after its last attempt", gone, worker, log, 90)  # retried after 2, 4 and 8 s
    finally:
        code = stop(worker)
    assert code == 0
    # After each of the first three failures the job waited, scheduled for later, with one more attempt counted.
    assert {(a, later) for status, a, later in seen if status == "todo" and a > 0} == {(1, True), (2, True), (3, True)}
    errors = [line for line in log_lines(log) if line["level"] == "error"]
    assert len(errors) == 1 and errors[0]["logger"].startswith("procrastinate")
    assert errors[0]["error"] == f"DisputerStateError: assertion 0x{unknown.hex()} is not in the disputer's state"
