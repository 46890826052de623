"""The per-answer path of a long-running server (`attest serve`): retrieve, answer, sign, pin, and in the ledger
queued for the next Merkle batch before the answer is returned; many threads at once, in one process.

It is `attest ask --batch` without the per-answer setup: the config, the account, the knowledge base (its index
held in memory), the corpus manifest and the providers are read once, not once per answer. Everything up to the
pin runs in the caller's thread; the ledger rows are written by one committer thread, every record handed to it
while the previous transaction was committing going into the next (group commit): one SQLite transaction for
many records, and the answer returns only once its own is committed. A crash loses only records whose answer
was never returned (they are either complete in the ledger or absent: one row per record, written at once).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from attest.batch.store import Answered, BatchBook
from attest.config import Config, load_config
from attest.errors import KbError, LedgerError
from attest.flow.answering import ANSWER_TEMPLATE, check_query, external_answer, provider_for, signed_record
from attest.flow.ask import AskRequest, AskResult, Timer
from attest.flow.publish import publish_record
from attest.ipfs.local import LocalStore
from attest.ledger import Attestation, Ledger
from attest.llm.base import GenerationParams, non_answer
from attest.llm.registry import Budgeted
from attest.paths import writable_home
from attest.prompts import catalog

MAX_GROUP = 512  # records per ledger transaction at most


class Attester:
    """Thread-safe; `close()` (or the `with` block's end) waits for the last commit."""

    def __init__(
        self,
        *,
        config: Config | None = None,
        network: str | None = None,
        account: str | None = None,
        batch: bool = True,
    ) -> None:
        from attest.accounts import load_account
        from attest.kb import KnowledgeBase

        self.config = config or load_config()
        self._batch = batch  # queue each answering record for the next Merkle batch
        self.network = self.config.resolve_network(network or self.config.defaults.network)
        writable_home("attest serve")
        loaded = load_account(account, self.network.name, default=self.config.defaults.account)
        self._account = loaded.account
        self._label = loaded.label
        self._store = LocalStore()
        self._template = catalog.get(ANSWER_TEMPLATE)
        self._providers: dict[tuple[str | None, str | None], tuple[Budgeted, str]] = {}
        self._lock = threading.Lock()  # the KB connection, the corpus and the provider cache
        self._kb = KnowledgeBase(document_store=self._store)
        self._kb.hold_in_memory()
        self._kb_version = -1
        self._corpus: str | None = None
        self._committer = _Committer(Ledger())

    def __enter__(self) -> Attester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._committer.close()
        self._kb.close()

    def attest(self, request: AskRequest) -> AskResult:
        """Answer the request's query (or take its answer, produced elsewhere) and return once its record is in
        the ledger: queued for the next batch, or only pinned (`batch` off, or an answer that answers nothing).
        The request's network, account and assertion options are the Attester's."""
        timer = Timer()
        check_query(request.query)
        with timer("retrieve"), self._lock:
            if request.context is None:
                chunks = self._kb.search(request.query, k=request.top_k)
            else:
                chunks = [self._kb.chunk_at(doc_cid, index) for doc_cid, index in request.context]
            corpus = self._corpus_now()
            chosen = None if request.answer is not None else self._provider(request.provider, request.model)
        with timer("answer"):
            if chosen is None:
                given, label = external_answer(request.answer or "", request.model, chunks)
            elif corpus is None:
                raise KbError("the knowledge base is empty; add documents first: `attest kb add PATH`")
            else:
                provider, model = chosen
                params = GenerationParams(model=model)
                given, label = (
                    provider.answer(request.query, chunks, self._template, params),
                    f"{provider.label}:{model}",
                )
        unanswered = non_answer(given, len(chunks)) if self._batch else None
        if unanswered is not None and request.assert_anyway:
            unanswered = None
        with timer("sign"):
            data, digest = signed_record(request.query, given, chunks, corpus, self._account)
        with timer("pin"):
            cid, rules_cid, pins = publish_record(data, self.network.name, self._store, self.config, strict=False)
        row = Answered(
            network=self.network.name, chain_id=self.network.chain_id, account=self._label,
            asserter=self._account.address, query=request.query, record=data, digest=digest, cid=str(cid),
            rules_cid=str(rules_cid), pins=pins, queue=self._batch and unanswered is None,
        )  # fmt: skip
        with timer("ledger"):
            attestation = self._committer.submit(row).result()
        return AskResult(
            attestation, given.text, given.citations, chunks, label, self.network, False, None, None, timer.ms,
            unanswered, given.metadata.usage,
        )  # fmt: skip

    def _corpus_now(self) -> str | None:
        """The corpus manifest's CID, pinned again only when the KB changed (None: the KB is empty)."""
        version = self._kb.data_version()
        if version != self._kb_version:
            self._corpus = self._kb.pin_manifest(self._store) if self._kb.stats().documents else None
            self._kb_version = version
        return self._corpus

    def _provider(self, name: str | None, model: str | None) -> tuple[Budgeted, str]:
        key = (name, model)
        if key not in self._providers:
            self._providers[key] = provider_for(name, model, self.config)
        return self._providers[key]


class _Committer:
    """The one writer of a process's answers: each transaction takes every record waiting when it begins."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._book = BatchBook(ledger.database)
        self._wake = threading.Condition()
        self._waiting: list[tuple[Answered, Future[Attestation]]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="attest-commit", daemon=True)
        self._thread.start()

    def submit(self, row: Answered) -> Future[Attestation]:
        done: Future[Attestation] = Future()
        with self._wake:
            if self._closed:
                raise LedgerError("the server is shutting down; nothing of this answer was written")
            self._waiting.append((row, done))
            self._wake.notify()
        return done

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self._ledger.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                ids = self._book.add_answered([row for row, _ in group])
                rows = [self._ledger.get(i) for i in ids]
            except Exception as err:  # each caller raises it as its own answer's failure
                for _, done in group:
                    done.set_exception(err)
                continue
            for (_, done), attestation in zip(group, rows, strict=True):
                done.set_result(attestation)
