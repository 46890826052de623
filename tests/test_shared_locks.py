"""The locks of processes sharing one PostgreSQL ledger (attest/locks.py): processes of different homes, as on
different machines, sign for one account one at a time, and one of them leads an account's batches; a holder
killed with SIGKILL frees what it held (a real PostgreSQL server, real processes)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psycopg

from attest.locks import BatchLeadership, SigningLock
from attest.storage import Postgres
from attest.storage.postgres import PASSWORD_ENV

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CHAIN_ID = 31337
SIGNER = f"""
import sys
from attest.locks import SigningLock
with SigningLock.configured({CHAIN_ID}, "{ACCOUNT}").held():
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin, or kills this process
print("released", flush=True)
"""
LEADER = f"""
import sys
from attest.locks import BatchLeadership, shared_server
leadership = BatchLeadership(shared_server())  # its session holds what it leads
print(leadership.lead({CHAIN_ID}, "{ACCOUNT}"), flush=True)
sys.stdin.read()
"""


def _home(tmp_path: Path, name: str, url: str) -> dict[str, str]:
    """A home of its own whose ledger is on the server at `url`: the environment of a process using it."""
    home = tmp_path / name
    home.mkdir()
    (home / "config.toml").write_text(f'[storage]\nurl = "{url}"\n')
    return {**os.environ, "ATTEST_HOME": str(home)}


def _start(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def _line(out: IO[str] | None, timeout_s: float = 60.0) -> str:
    assert out is not None
    ready, _, _ = select.select([out], [], [], timeout_s)
    assert ready, f"no line within {timeout_s} s"
    return out.readline().strip()


def _waiting_for_advisory_locks(url: str) -> int:
    with psycopg.connect(url, password=os.environ[PASSWORD_ENV], autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
        assert row is not None
        return int(row[0])


def test_two_homes_on_one_server_sign_for_an_account_one_at_a_time(postgres_url: str, tmp_path: Path) -> None:
    first = _start(SIGNER, _home(tmp_path, "a", postgres_url))
    second: subprocess.Popen[str] | None = None
    try:
        assert _line(first.stdout) == "held"
        second = _start(SIGNER, _home(tmp_path, "b", postgres_url))
        deadline = time.monotonic() + 60
        while _waiting_for_advisory_locks(postgres_url) == 0:  # the other home's process waits on the server
            assert second.poll() is None and time.monotonic() < deadline, "the second signer did not wait"
            time.sleep(0.1)
        assert select.select([second.stdout], [], [], 0)[0] == []  # it waits, without the lock
        os.kill(first.pid, signal.SIGKILL)  # its session ends, and the lock with it
        first.wait(timeout=30)
        assert _line(second.stdout) == "held"
        out, _ = second.communicate("", timeout=60)
        assert out.strip() == "released" and second.returncode == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def test_the_signing_lock_is_reentrant_on_its_server(postgres_url: str) -> None:
    lock = SigningLock(CHAIN_ID, ACCOUNT, server=Postgres(postgres_url))
    with lock.held(), lock.held():  # a flow holds it around a decision and the sends that follow
        pass
    with lock.held():  # given back whole, and taken again on the same session
        assert _waiting_for_advisory_locks(postgres_url) == 0


def test_one_process_leads_an_accounts_batches_until_it_dies(postgres_url: str, tmp_path: Path) -> None:
    leader = _start(LEADER, _home(tmp_path, "a", postgres_url))
    mine = BatchLeadership(Postgres(postgres_url))
    try:
        assert _line(leader.stdout) == "True"
        assert not mine.lead(CHAIN_ID, ACCOUNT)
        assert mine.lead(CHAIN_ID, "0x" + "11" * 20)  # another account has a leader of its own
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(timeout=30)
        _takes_over(mine)  # a poll after the server ends the dead leader's session
        assert mine.lead(CHAIN_ID, ACCOUNT)  # and keeps it
        follower = BatchLeadership(Postgres(postgres_url))
        assert not follower.lead(CHAIN_ID, ACCOUNT)
        mine.close()  # a leader stopping: its session ends
        _takes_over(follower)
        follower.close()
    finally:
        mine.close()
        if leader.poll() is None:
            leader.kill()
            leader.wait(timeout=30)


def _takes_over(leadership: BatchLeadership) -> None:
    """Until `leadership` leads, polling as the server's flusher does (the server frees the locks of a session
    once it sees the session end)."""
    deadline = time.monotonic() + 60
    while not leadership.lead(CHAIN_ID, ACCOUNT):
        assert time.monotonic() < deadline, "no takeover after the leader's session ended"
        time.sleep(0.1)


def test_on_sqlite_every_process_leads() -> None:
    assert BatchLeadership(None).lead(CHAIN_ID, ACCOUNT)
