"""The dashboard without a browser: its pages over a real SQLite index (filled by hand, or scanned from the
devnet), bad input as pages with the right status and no stack trace, the CSRF and Origin checks of its forms,
and the Markdown of claims rendered safely."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from attest.chain.oov3 import AssertionMade
from attest.claim import build_claim, rules_cid
from attest.ledger import Ledger
from attest.paths import attest_home
from attest.ui.app import create_app
from attest.ui.index import AssertionIndex, Filters
from attest.ui.markdown import render
from attest.ui.scan import sync
from tests.conftest import LocalChain
from tests.support.ports import free_port
from tests.test_ask import KB_DOCS, QUESTION, ok
from tests.test_verify import CHUNK_A, DOC_A, DOC_B, World, world  # noqa: F401 (the fixture)

ASSERTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def made(n: int, *, asserter: str = ASSERTER, claim: bytes | None = None) -> AssertionMade:
    digest = "0x" + f"{n:064x}"
    return AssertionMade(
        assertion_id=n.to_bytes(32, "big"), domain_id=bytes.fromhex(digest[2:]),
        claim=claim or build_claim(CID, digest, asserter, rules_cid(), f"question number {n}?"),
        asserter=asserter, callback_recipient=OTHER, escalation_manager="0x" + "00" * 20, caller=asserter,
        expiration_time=1_000 + n, currency=OTHER, bond=200_000_000, identifier=b"ASSERT_TRUTH2".ljust(32, b"\0"),
        tx_hash=n.to_bytes(32, "big"), log_index=0, block_number=n,
    )  # fmt: skip


def fill(count: int) -> None:
    index = AssertionIndex(attest_home() / "ui" / "index-local.sqlite")
    try:
        events = [made(n, asserter=ASSERTER if n % 2 else OTHER) for n in range(1, count + 1)]
        index.reset("test", 0)
        index.apply(events, {}, count + 1, "0x00", ours={"0x" + (3).to_bytes(32, "big").hex()})
    finally:
        index.close()


@pytest.fixture
def client(attest_home: str) -> Iterator[TestClient]:
    """The dashboard of a home whose devnet is not running: the chain is down."""
    with TestClient(create_app("local", scan=False), raise_server_exceptions=False) as c:
        yield c


def actions_app() -> FastAPI:
    return create_app("local", allow_actions=True, scan=False)


def test_claim_markdown_is_rendered_and_nothing_hostile_survives() -> None:
    html = render("Intro **bold** and `<code>`.\n\n1. one [ipfs.io](https://ipfs.io/ipfs/x)\n2. two ipfs://y")
    assert "<strong>bold</strong>" in html and "<code>&lt;code&gt;</code>" in html
    assert '<ol><li>one <a href="https://ipfs.io/ipfs/x"' in html and "<li>two ipfs://y</li>" in html
    hostile = render('<script>alert(1)</script> [x](javascript:alert(1)) [y](https://a" onmouseover="z)')
    assert "<script>" not in hostile and "javascript:" not in hostile.replace("[x](javascript:", "")
    assert 'href="javascript' not in hostile and 'onmouseover="' not in hostile
    assert "&lt;script&gt;" in hostile


def test_the_list_pages_filters_and_marks_ours(client: TestClient) -> None:
    fill(120)
    first = client.get("/")
    assert first.status_code == 200 and "120 assertions" in first.text
    assert first.text.count('<tr data-position="') == 50 and "question number 120" in first.text
    older = client.get("/?before=" + str(71 * 1_000_000))
    assert older.status_code == 200 and "question number 70" in older.text and "question number 71?" not in older.text
    mine = client.get("/?ours=1")
    assert "1 assertion," in mine.text and 'class="ours"' in mine.text
    by = client.get(f"/?asserter={OTHER.lower()}")
    assert "60 assertions" in by.text
    assert "0 assertions" in client.get("/?status=settled").text and "0 assertions" in client.get("/?batch=1").text
    live = client.get("/live?after=" + str(119 * 1_000_000)).json()
    assert live["count"] == 1 and "question number 120" in live["html"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/assertion/0x1234", 400, "is not an assertion id"),
        ("/assertion/0x" + "ab" * 32, 404, "there is no assertion 0x" + "ab" * 32),
        ("/record/not-a-cid", 400, "is not a CID"),
        (f"/record/{CID}", 404, "not found"),
        (f"/record/{CID}/context/1", 404, "not found"),
        ("/?status=bogus", 400, "is not one of asserted, disputed, settled"),
        ("/?asserter=0xnope", 400, "is not an address"),
        ("/?before=later", 400, "must be a whole number"),
        ("/no/such/page", 404, "no such page"),
    ],
)
def test_bad_input_is_a_page_saying_what_is_wrong(client: TestClient, path: str, status: int, says: str) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert says in response.text and "Traceback" not in response.text
    assert "<h1>This cannot be shown</h1>" in response.text


def test_the_kb_page_says_a_kb_is_not_governed(client: TestClient) -> None:
    assert "no knowledge base yet" in client.get("/kb").text
    ok("kb", "add", str(KB_DOCS))
    page = client.get("/kb").text
    assert "Not governed:" in page and '<th scope="col">Approval</th>' not in page and "guide.md" in page


def test_a_chain_that_is_down_is_said_on_the_assertion_page(client: TestClient) -> None:
    fill(3)
    page = client.get("/assertion/0x" + (2).to_bytes(32, "big").hex())
    assert page.status_code == 503 and "Traceback" not in page.text
    assert "the local chain cannot be reached" in page.text and "FAIL" in page.text
    assert "question number 2" in page.text  # the claim, from the index, is still shown


def test_actions_need_the_flag_the_token_and_this_origin(attest_home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app("local", scan=False), raise_server_exceptions=False) as off:
        refused = off.post("/actions/settle/1", data={"csrf": "x"}, headers={"Origin": "http://testserver"})
        assert refused.status_code == 403 and "--allow-actions" in refused.text
    app = actions_app()
    token = app.state.dashboard.csrf
    with TestClient(app, raise_server_exceptions=False) as c:
        no_token = c.post("/actions/settle/1", data={}, headers={"Origin": "http://testserver"})
        assert no_token.status_code == 403 and "token is missing or stale" in no_token.text
        wrong = c.post("/actions/settle/1", data={"csrf": token + "x"}, headers={"Origin": "http://testserver"})
        assert wrong.status_code == 403
        elsewhere = c.post("/actions/settle/1", data={"csrf": token}, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403 and "Origin check" in elsewhere.text
        nowhere = c.post("/actions/settle/1", data={"csrf": token})
        assert nowhere.status_code == 403
        # Past the checks, the request reaches `attest settle`'s flow: this home's ledger has no #1.
        passed = c.post("/actions/settle/1", data={"csrf": token}, headers={"Origin": "http://testserver"})
        assert passed.status_code == 404 and "Traceback" not in passed.text
        assert 'name="csrf"' not in c.get("/mine").text  # no attestation to settle: no form
    with monkeypatch.context() as bare:  # a home with attest alone: no package adds to the dashboard
        bare.setattr("attest.ui.disputer_view.entry_points", lambda group: [])
        assert "No disputer is installed beside attest here" in TestClient(actions_app()).get("/disputer").text


def test_a_failing_check_is_shown_failed_on_every_page(world: World) -> None:  # noqa: F811
    invented = "The base fee is paid to the miner in full."
    _, cid, assertion = world.asserted(chunks=[(CHUNK_A, DOC_A), (invented, DOC_B)])
    aid = "0x" + assertion.assertion_id.hex()
    index = AssertionIndex(attest_home() / "ui" / "index-local.sqlite")
    try:
        sync(index, world.ctx, set())
        (row,) = index.page(Filters())
        assert row.assertion_id == aid and row.kind == "record" and row.record_cid == cid
    finally:
        index.close()
    with TestClient(create_app("local", scan=False), raise_server_exceptions=False) as c:
        page = c.get(f"/assertion/{aid}")
        assert page.status_code == 200, page.text
        assert "check failed: context" in page.text and 'class="check-fail"' in page.text
        assert "The UMA Oracle UI does not list local" in page.text
        record = c.get(f"/record/{cid}")
        assert record.status_code == 200 and "What happens to the EIP-1559 base fee?" in record.text
        assert f'<a href="/record/{cid}/context/2" aria-label="cited passage 2">[2]</a>' in record.text
        assert "as the asserter states it" in record.text
        passage = c.get(f"/record/{cid}/context/2")
        assert passage.status_code == 200 and "the text is NOT in the document it names" in passage.text
        assert c.get(f"/record/{cid}/context/3").status_code == 404


def test_settle_from_the_dashboard_goes_through_attest_settle(local_chain: LocalChain) -> None:
    ok("kb", "add", str(KB_DOCS))
    asked = json.loads(ok("ask", QUESTION, "--json"))
    local_chain.advance(7300)
    app = actions_app()
    token = app.state.dashboard.csrf
    with TestClient(app, raise_server_exceptions=False) as c:
        mine = c.get("/mine")
        assert "Settle #1" in mine.text and f'value="{token}"' in mine.text and "Bonds at stake: 200 USDC" in mine.text
        done = c.post(
            "/actions/settle/1", data={"csrf": token}, headers={"Origin": "http://testserver"}, follow_redirects=False
        )
        assert done.status_code == 303 and "settled" in done.headers["location"]
        assert "#1: settled (attested)" in c.get(done.headers["location"]).text
        again = c.post("/actions/settle/1", data={"csrf": token}, headers={"Origin": "http://testserver"})
        assert again.status_code == 200 and "#1: already settled" in again.text  # idempotent: nothing sent twice
    with Ledger() as ledger:
        a = ledger.find(str(asked["assertion_id"]))
        assert (a.status, a.outcome) == ("settled", "attested")
        assert [t.kind for t in ledger.txs(a.id)] == ["approve", "assert", "settle"]


def test_dispute_from_the_dashboard_goes_through_the_disputer(world: World) -> None:  # noqa: F811
    invented = "The base fee is paid to the miner in full."
    _, _, assertion = world.asserted(chunks=[(CHUNK_A, DOC_A), (invented, DOC_B)])
    aid = "0x" + assertion.assertion_id.hex()
    index = AssertionIndex(attest_home() / "ui" / "index-local.sqlite")
    try:
        sync(index, world.ctx, set())
    finally:
        index.close()
    with TestClient(create_app("local", scan=False), raise_server_exceptions=False) as read_only:
        assert "Judge and dispute" not in read_only.get(f"/assertion/{aid}").text  # no actions without the flag
    app = actions_app()
    token = app.state.dashboard.csrf
    with TestClient(app, raise_server_exceptions=False) as c:
        page = c.get(f"/assertion/{aid}")
        assert "Judge and dispute if wrong" in page.text and "The disputer's verdicts" not in page.text
        origin = {"Origin": "http://testserver"}
        refused = c.post(f"/actions/dispute/{aid}", data={"csrf": "stale"}, headers=origin)
        assert refused.status_code == 403
        done = c.post(f"/actions/dispute/{aid}", data={"csrf": token}, headers=origin, follow_redirects=False)
        assert done.status_code == 303, done.text
        shown = c.get(done.headers["location"])
        assert "The disputer: dispute:" in shown.text and "dispute mined 0x" in shown.text
        assert "The disputer's verdicts" in shown.text and "context" in shown.text
        # The typed verdict: action and reason, its judge, and each of its checks with pass or fail.
        assert "<strong>dispute</strong>: failed check context" in shown.text
        assert "by deterministic-checks at" in shown.text
        assert '<span class="status status-fail">FAIL</span> context: chunk 1' in shown.text
        decisions = c.get("/disputer")
        assert decisions.status_code == 200 and "<svg" in decisions.text and "dispute 1" in decisions.text
    assert world.ctx.oov3.get_assertion(assertion.assertion_id).disputed


def test_attest_ui_serves_on_localhost_until_stopped(attest_home: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attest", "ui", "--port", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    status, body = response.status, response.read().decode()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "attest ui did not start"
                time.sleep(0.2)
        assert status == 200 and "Chain unreachable" in body and "start it with `attest devnet up`" in body
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught, as the signal's own exit status.
    assert process.returncode == -signal.SIGTERM and "Traceback" not in err, err
    assert f"attest ui: http://127.0.0.1:{port}/ (read-only)" in err


def test_a_hostile_foreign_claim_is_shown_escaped(client: TestClient) -> None:
    hostile = b'{"title":"<script>alert(1)</script>","description":"[x](javascript:alert(2)) **hi** <img src=x>"}'
    index = AssertionIndex(attest_home() / "ui" / "index-local.sqlite")
    try:
        index.reset("test", 0)
        index.apply([made(7, claim=hostile), made(8, claim=b"\xff\xfe not UTF-8 <b>")], {}, 9, "0x00")
    finally:
        index.close()
    listed = client.get("/")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text and "<script>alert" not in listed.text
    assert "(no title: not a JSON claim)" in listed.text
    page = client.get("/assertion/0x" + (7).to_bytes(32, "big").hex())
    assert "<strong>hi</strong>" in page.text and "&lt;img src=x&gt;" in page.text
    assert "<script>alert" not in page.text and 'href="javascript' not in page.text and "<img src=x>" not in page.text
    raw = client.get("/assertion/0x" + (8).to_bytes(32, "big").hex())
    assert "shows this claim as raw text" in raw.text and "&lt;b&gt;" in raw.text and "<b>" not in raw.text
