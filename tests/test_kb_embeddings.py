"""The embeddings client through the real openai SDK against a local fake `/v1/embeddings`, vectors in the KB,
and hybrid search finding what BM25 alone cannot.

The fake embeds by a known rule: one dimension per concept, counting the words of the text that belong to it, so
"car" and "automobile" get the same direction while sharing no term a lexical index could match.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from attest.errors import KbError, MissingKey, ModelError, ProviderUnavailable, RateLimited, RejectedKey
from attest.kb import KnowledgeBase
from attest.kb.embeddings import OpenAIEmbedder, embed_missing, hybrid_search
from tests.support.ports import free_port

KEY = "fake-embeddings-key-for-tests"
MODEL = "fake-embed-1"
CONCEPTS = (
    frozenset({"car", "cars", "automobile", "vehicle"}),
    frozenset({"cat", "kitten", "feline"}),
    frozenset({"bank", "money", "loan", "finance"}),
    frozenset({"ship", "boat", "vessel"}),
)


def rule(text: str) -> list[float]:
    words = re.findall(r"[a-z]+", text.lower())
    return [float(sum(word in concept for word in words)) for concept in CONCEPTS]


@dataclass
class FakeEmbeddings:
    """A real HTTP server on 127.0.0.1; `script` is the statuses to answer before it answers 200 by the rule."""

    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # {"path", "authorization", "body"}
    vectors_per_request: int | None = None  # answer this many vectors whatever was asked (a broken server)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        self.requests.append(
            {"path": handler.path, "authorization": handler.headers.get("Authorization"), "body": body}
        )
        headers = {"Content-Type": "application/json"}
        if self.script:
            status, payload = self.script.pop(0)
            headers["retry-after-ms"] = "5"  # keeps the SDK's backoff short
        else:
            inputs = body["input"][: self.vectors_per_request]
            data = [{"object": "embedding", "index": i, "embedding": rule(t)} for i, t in enumerate(inputs)]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            status, payload = 200, {"object": "list", "model": body["model"], "data": data, "usage": usage}
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


@pytest.fixture
def fake() -> Iterator[FakeEmbeddings]:
    state = FakeEmbeddings()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.answer(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(tmp_path / "kb.sqlite3") as base:
        base.add_document("garage.md", b"# Garage\n\nThe automobile needs new tyres before winter.\n")
        base.add_document("pets.md", b"# Pets\n\nThe kitten sleeps all day by the window.\n")
        base.add_document("money.md", b"# Money\n\nThe bank sells insurance and gives a loan at low interest.\n")
        base.add_document("harbour.md", b"# Harbour\n\nA vessel with tall masts came in at dawn.\n")
        base.add_document("notes.md", b"# Notes\n\nNothing to see here, only weather and tea.\n")
        yield base


def embedder(fake: FakeEmbeddings, **options: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(MODEL, base_url=fake.base_url, api_key=KEY, **options)


def test_embed_missing_batches_requests_and_stores_vectors(fake: FakeEmbeddings, kb: KnowledgeBase) -> None:
    pending = kb.chunks_without_embedding(MODEL)
    assert len(pending) == 5

    assert embed_missing(kb, embedder(fake, batch_size=2), MODEL) == 5

    assert [len(r["body"]["input"]) for r in fake.requests] == [2, 2, 1]
    for r in fake.requests:
        assert r["path"] == "/v1/embeddings"
        assert r["authorization"] == f"Bearer {KEY}"
        assert r["body"]["model"] == MODEL
        assert r["body"]["encoding_format"] == "float"
        assert "dimensions" not in r["body"]
    sent = [text for r in fake.requests for text in r["body"]["input"]]
    assert sent == [text for _, text in pending]  # every chunk once, in order
    stored = dict(kb.embeddings(MODEL))
    assert stored == {chunk_id: rule(text) for chunk_id, text in pending}  # small integers survive float32
    assert kb.stats().embeddings == {MODEL: 5}

    assert embed_missing(kb, embedder(fake), MODEL) == 0  # nothing left to embed: no request at all
    assert len(fake.requests) == 3


def test_key_comes_from_the_environment(fake: FakeEmbeddings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAIEmbedder(MODEL, base_url=fake.base_url, dimensions=4).embed(["a cat"]) == [[0.0, 1.0, 0.0, 0.0]]
    assert fake.requests[0]["authorization"] == "Bearer sk-from-env"
    assert fake.requests[0]["body"]["dimensions"] == 4


def test_no_key_anywhere_is_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKey, match="OPENAI_API_KEY"):
        OpenAIEmbedder(MODEL, base_url="http://127.0.0.1:9/v1")


def test_429_then_200_is_retried(fake: FakeEmbeddings) -> None:
    fake.script = [(429, {"error": {"message": "slow down", "type": "rate_limit"}})]
    assert embedder(fake).embed(["boat and car"]) == [[1.0, 0.0, 0.0, 1.0]]
    assert len(fake.requests) == 2
    assert fake.requests[0]["body"] == fake.requests[1]["body"]


def test_retries_are_bounded(fake: FakeEmbeddings) -> None:
    fake.script = [(429, {"error": {"message": "slow down"}})] * 5
    with pytest.raises(RateLimited, match="after 2 retries"):
        embedder(fake, max_retries=2).embed(["x"])
    assert len(fake.requests) == 3

    fake.requests.clear()
    fake.script = [(503, {"error": {"message": "overloaded"}})] * 5
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        embedder(fake, max_retries=1).embed(["x"])
    assert len(fake.requests) == 2


def test_401_is_rejected_key_and_never_shows_the_key(fake: FakeEmbeddings) -> None:
    fake.script = [(401, {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request"}})]
    with pytest.raises(RejectedKey) as caught:
        embedder(fake, max_retries=3).embed(["x"])
    assert len(fake.requests) == 1  # a refused key is not retried
    assert KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_other_refusals_say_why_without_the_key(fake: FakeEmbeddings) -> None:
    fake.script = [(400, {"error": {"message": f"model {MODEL} does not exist for key {KEY}"}})]
    with pytest.raises(ModelError, match=r"HTTP 400.*does not exist") as caught:
        embedder(fake).embed(["x"])
    assert KEY not in str(caught.value)
    assert "***" in str(caught.value)


def test_a_server_that_drops_vectors_is_an_error(fake: FakeEmbeddings) -> None:
    fake.vectors_per_request = 1
    with pytest.raises(ModelError, match="1 vectors for 2 inputs"):
        embedder(fake).embed(["a", "b"])


def test_nothing_listening_is_provider_unavailable() -> None:
    with pytest.raises(ProviderUnavailable, match="cannot connect"):
        OpenAIEmbedder(MODEL, base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=KEY, max_retries=0).embed(["x"])


def test_hybrid_search_finds_a_chunk_lexical_search_misses(fake: FakeEmbeddings, kb: KnowledgeBase) -> None:
    client = embedder(fake)
    embed_missing(kb, client, MODEL)
    query = "car insurance"

    lexical = kb.search(query, k=5)
    assert [hit.source for hit in lexical] == ["money.md"]  # "insurance"; no chunk says "car"

    hybrid = hybrid_search(kb, client, MODEL, query, k=2)
    assert [hit.source for hit in hybrid] == ["money.md", "garage.md"]
    assert "automobile" in hybrid[1].text
    # money.md: BM25 rank 1, plus cosine rank 3 (similarity 0, tied with later chunks, after pets.md by id);
    # garage.md: cosine rank 1 only.
    assert hybrid[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert hybrid[1].score == pytest.approx(1 / 61)
    assert fake.requests[-1]["body"]["input"] == [query]


def test_hybrid_search_needs_vectors_first(fake: FakeEmbeddings, kb: KnowledgeBase) -> None:
    with pytest.raises(KbError, match="embed it first"):
        hybrid_search(kb, embedder(fake), MODEL, "car", k=2)
    assert fake.requests == []  # refused before spending a request


def test_cli_embed_then_hybrid_search_through_config(
    fake: FakeEmbeddings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from attest.cli.kb import kb as kb_group

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "garage.md").write_text("# Garage\n\nThe automobile is parked in the garage.\n")
    (docs / "money.md").write_text("# Money\n\nInsurance and loans are paid from the bank account.\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[embeddings]\nmodel = "{MODEL}"\nbase_url = "{fake.base_url}"\nkey_env = "EMBED_KEY"\n')
    monkeypatch.setenv("ATTEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATTEST_CONFIG", str(config))
    monkeypatch.setenv("EMBED_KEY", KEY)
    runner = CliRunner()

    assert runner.invoke(kb_group, ["add", str(docs)]).exit_code == 0
    plain = runner.invoke(kb_group, ["search", "car", "insurance", "--json"])
    assert [hit["source"] for hit in json.loads(plain.output)] == ["docs/money.md"]

    embedded = runner.invoke(kb_group, ["embed"])
    assert embedded.exit_code == 0 and embedded.output.startswith("embedded ")
    assert fake.requests[0]["authorization"] == f"Bearer {KEY}"
    hybrid = runner.invoke(kb_group, ["search", "car", "insurance", "--hybrid", "--json"])
    assert hybrid.exit_code == 0, hybrid.output
    assert "docs/garage.md" in [hit["source"] for hit in json.loads(hybrid.output)]


def test_cli_hybrid_search_without_embeddings_config_says_how_to_turn_it_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from attest.cli.kb import kb as kb_group
    from attest.errors import KbError

    monkeypatch.setenv("ATTEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATTEST_CONFIG", str(tmp_path / "absent.toml"))
    result = CliRunner().invoke(kb_group, ["search", "anything", "--hybrid"])
    assert isinstance(result.exception, KbError) and "[embeddings] model" in str(result.exception)
