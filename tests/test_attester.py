"""The Attester, the server's per-answer path: many threads at once, each answer's record signed, pinned and in
the ledger (queued, with the steps a one-by-one `attest ask --batch` writes) before it returns; records written
many to a SQLite transaction; a record that answers nothing is pinned, never queued (real SQLite, real block
store, real signatures)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attest.batch.store import BatchBook
from attest.errors import LedgerError
from attest.flow.ask import AskRequest
from attest.flow.attester import Attester
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ledger import Ledger
from attest.record.codec import decode_record
from attest.storage import Database
from tests.test_ask import KB_DOCS, QUESTION, ok

THREADS = 32
ANSWERS = 200


@pytest.fixture
def kb(attest_home: str) -> str:
    ok("kb", "add", str(KB_DOCS))
    return attest_home


def test_many_threads_each_answer_in_the_ledger_once_before_it_returns(
    kb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    real = Database.transaction

    def counted(self: Database, *, durable: bool = False):  # type: ignore[no-untyped-def]
        if self._depth == 0 and self.path.name == "ledger.sqlite":
            commits.append(1)
        return real(self, durable=durable)

    monkeypatch.setattr(Database, "transaction", counted)
    with Attester() as attester:
        request = AskRequest(QUESTION, provider="extractive")
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda _: attester.attest(request), range(ANSWERS)))
    ids = [r.attestation.id for r in results]
    assert len(set(ids)) == ANSWERS
    assert 0 < len(commits) < ANSWERS  # grouped: fewer transactions than records
    store = LocalStore()
    with Ledger() as ledger:
        assert [i for i, _, _ in BatchBook(ledger.database).queued()] == sorted(ids)
        for result in results:
            row = ledger.get(result.attestation.id)
            assert row == result.attestation and row.status == "queued" and row.cid is not None
            assert [s.step for s in ledger.steps(row.id)] == ["signed", "pinned", "queued"]
            assert store.is_pinned(CID.parse(row.cid)) and store.get(CID.parse(row.cid)) == row.record
            record = decode_record(row.record)  # the signature checks out
            assert record.answer == result.answer and "trim" in record.answer.lower()
            assert record.asserter == row.asserter and record.corpus is not None


def test_an_answer_to_nothing_is_pinned_not_queued_and_off_batch_nothing_is_queued(kb: str) -> None:
    with Attester() as attester:
        declined = attester.attest(AskRequest("What is the airspeed of an unladen swallow?", provider="extractive"))
    assert declined.attestation.status == "pinned" and declined.not_asserted is not None
    with Attester(batch=False) as attester:
        kept = attester.attest(AskRequest(QUESTION, provider="extractive"))
    assert kept.attestation.status == "pinned" and kept.not_asserted is None
    with Ledger() as ledger:
        assert BatchBook(ledger.database).queued() == []


def test_a_failed_commit_fails_its_answers_and_writes_nothing(kb: str, attest_home: str) -> None:
    with Attester() as attester:
        attester.attest(AskRequest(QUESTION, provider="extractive"))
        blocker = sqlite3.connect(Path(attest_home) / "ledger.sqlite", timeout=0)
        blocker.execute("PRAGMA busy_timeout = 0")
        blocker.execute("CREATE TRIGGER refuse BEFORE INSERT ON attestations BEGIN SELECT RAISE(ABORT, 'no'); END")
        blocker.commit()
        with pytest.raises(LedgerError, match="nothing was changed"):
            attester.attest(AskRequest(QUESTION, provider="extractive"))
        blocker.execute("DROP TRIGGER refuse")
        blocker.commit()
        after = attester.attest(AskRequest(QUESTION, provider="extractive"))
    with Ledger() as ledger:
        assert [i for i, _, _ in BatchBook(ledger.database).queued()] == [1, after.attestation.id]
        assert after.attestation.id == 2  # the failed one left no row
