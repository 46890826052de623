"""A governed knowledge base: signed ingest requests (EIP-712), `attest kb sync` against a real KnowledgeRegistry on
the devnet (an account governor here; the DAO cycle is in test_kb_dao_cycle), and every refusal leaving the KB
as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient

from attest.accounts import dev_account
from attest.chain.artifacts import shipped
from attest.chain.knowledge import deploy_call
from attest.chain.tx import Sender
from attest.claim import (
    MAX_CLAIM_BYTES,
    build_claim,
    governed_rules,
    parse_claim,
    rules_bytes,
    rules_cid,
    ui_view,
)
from attest.cli import cli
from attest.errors import AttestError, IngestRequestError
from attest.ipfs.cid import CID, b58encode
from attest.ipfs.local import LocalStore
from attest.kb import KnowledgeBase
from attest.kb.request import IngestRequest, check_request, parse_request, sign_request, typed_data
from attest.ledger import Ledger
from attest.ui.app import create_app
from disputer.cli import cli as disputer_cli
from tests.conftest import LocalChain

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CID_ONE = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
CONTRIBUTOR = 5  # dev:5 holds no DAO votes: a plain contributor
GOVERNOR = 0


def run(*args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(cli, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def refused(*args: str) -> str:
    """A refusal the CLI edge prints as one line (an AttestError with a one-line message)."""
    result = run(*args)
    assert isinstance(result.exception, AttestError), result.exception
    assert "\n" not in str(result.exception)
    return str(result.exception)


# -- the pure request ------------------------------------------------------------------------------------
def test_a_request_recovers_to_its_contributor_and_matches_a_wallets_signature() -> None:
    key = dev_account(CONTRIBUTOR)
    request = sign_request(key, chain_id=31337, registry=REGISTRY, cid=CID_ONE, expiry=2_000_000_000, nonce=7)
    check_request(request, chain_id=31337, registry=REGISTRY, now=1_900_000_000)
    # What a wallet signs for eth_signTypedData_v4 with the same JSON gives the same signature.
    message = encode_typed_data(full_message=typed_data(31337, REGISTRY, CID_ONE, key.address, 7, 2_000_000_000))
    assert "0x" + bytes(Account.sign_message(message, key.key).signature).hex() == request.signature
    assert parse_request(request.dumps().encode()) == request
    assert sign_request(key, chain_id=31337, registry=REGISTRY, cid=CID_ONE, expiry=1).nonce != request.nonce


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"chain_id": 1}, "is for chain 1, not 31337"),
        ({"registry": "0x" + "11" * 20}, "is for the registry 0x1111"),
        ({"expiry": 100}, "expired at 100"),
        ({"contributor": dev_account(6).address}, "is forged"),
        ({"cid": "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"}, "is forged"),
        ({"nonce": 8}, "is forged"),
    ],
)
def test_a_request_changed_after_signing_is_refused(change: dict[str, object], why: str) -> None:
    signed = sign_request(dev_account(CONTRIBUTOR), chain_id=31337, registry=REGISTRY, cid=CID_ONE, expiry=10**10)
    changed = IngestRequest(**{**signed.__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(IngestRequestError, match=why):
        check_request(changed, chain_id=31337, registry=REGISTRY, now=1000)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "needs exactly the keys"),
        (b"{" * 100, "not JSON"),
        (b"x" * 5000, "an ingest request is under"),
        (b'{"schema": 1}', "needs exactly the keys"),
    ],
)
def test_hostile_request_files_are_refused_in_one_line(data: bytes, why: str) -> None:
    with pytest.raises(IngestRequestError, match=why):
        parse_request(data)


def test_request_fields_are_checked() -> None:
    good = sign_request(dev_account(1), chain_id=31337, registry=REGISTRY, cid=CID_ONE, expiry=10**10).to_json()
    for key, value, why in [
        ("nonce", "-1", "nonce is not a decimal uint256"),
        ("nonce", str(1 << 256), "nonce is not a decimal uint256"),
        ("signature", "0x12", "signature is not"),
        ("cid", "z" + b58encode(CID.parse(CID_ONE).to_bytes()), "not in canonical form"),
        ("contributor", "0xnothex", "not an address"),
        ("schema", "other/v9", "not llm-attest/kb-ingest-request/v1"),
    ]:
        with pytest.raises(IngestRequestError, match=why):
            parse_request(json.dumps({**good, key: value}).encode())


# -- on the devnet, with an account governor -----------------------------------------------------------------
def deploy_registry(chain: LocalChain) -> str:
    receipt = Sender(chain.w3, dev_account(GOVERNOR)).transact(
        deploy_call(chain.w3, dev_account(GOVERNOR).address), "deploy KnowledgeRegistry"
    )
    return str(receipt["contractAddress"])


def govern(chain: LocalChain, registry: str, action: str, contributor: str, cid: str) -> None:
    contract = chain.w3.eth.contract(address=registry, abi=shipped("KnowledgeRegistry").abi)
    Sender(chain.w3, dev_account(GOVERNOR)).transact(getattr(contract.functions, action)(contributor, cid), action)


def add_to_ipfs(text: str) -> str:
    return str(LocalStore().put(text.encode(), cid_version=1))


def kb_snapshot() -> tuple[str, list[str]]:
    with KnowledgeBase() as kb:
        return kb.manifest_cid(), [d.doc_cid for d in kb.documents()]


@pytest.fixture
def governed(local_chain: LocalChain, tmp_path: Path) -> tuple[LocalChain, str, str]:
    """A registry governed by dev:0, the guide approved for dev:5 and in the local store, and dev:5's request."""
    registry = deploy_registry(local_chain)
    cid = add_to_ipfs((KB_DOCS / "guide.md").read_text())
    govern(local_chain, registry, "approve", dev_account(CONTRIBUTOR).address, cid)
    request = tmp_path / "request.json"
    out = ok("kb", "request", cid, "--account", f"dev:{CONTRIBUTOR}", "--registry", registry, "-o", str(request))
    assert f"signed: ingest {cid} by {dev_account(CONTRIBUTOR).address}" in out
    return local_chain, registry, str(request)


def test_a_signed_request_ingests_an_approved_document_and_a_revocation_removes_it(
    governed: tuple[LocalChain, str, str],
) -> None:
    chain, registry, request = governed
    cid = json.loads(Path(request).read_text())["cid"]
    synced = json.loads(ok("kb", "sync", request, "--registry", registry, "--json"))
    assert synced["ingested"][0]["cid"] == cid and synced["ingested"][0]["status"] == "added"
    assert synced["governance"]["registry"] == registry and synced["governance"]["chain_id"] == 31337
    with KnowledgeBase() as kb:
        manifest = kb.manifest()
    assert manifest["schema"] == "llm-attest/kb-manifest/v2"
    assert manifest["governance"] == synced["governance"]
    assert manifest["documents"][0]["contributor"] == dev_account(CONTRIBUTOR).address
    # A governed KB takes documents only through requests.
    assert "only through `attest kb request` and `attest kb sync`" in refused("kb", "add", str(KB_DOCS))
    # The same request again is a replay; nothing changes.
    before = kb_snapshot()
    assert "reuses nonce" in refused("kb", "sync", request, "--registry", registry)
    assert kb_snapshot() == before
    # Revoked: the next sync removes it.
    govern(chain, registry, "revoke", dev_account(CONTRIBUTOR).address, cid)
    synced = json.loads(ok("kb", "sync", "--registry", registry, "--json"))
    assert synced["removed"] == [cid] and kb_snapshot()[1] == []
    assert "with `attest kb request` and `attest kb sync`" in ok("kb", "list")


def test_refused_requests_leave_the_kb_unchanged(governed: tuple[LocalChain, str, str], tmp_path: Path) -> None:
    chain, registry, request = governed
    ok("kb", "sync", request, "--registry", registry)
    before = kb_snapshot()
    contributor = dev_account(CONTRIBUTOR)
    chain_id = 31337

    def write(name: str, cid: str, expiry: int = 10**10) -> str:
        path = tmp_path / name
        path.write_text(sign_request(contributor, chain_id=chain_id, registry=registry, cid=cid, expiry=expiry).dumps())
        return str(path)

    other = add_to_ipfs("# Lamps\n\nA lamp needs oil every evening.\n")
    never = write("never.json", other)
    assert "it was never approved" in refused("kb", "sync", never, "--registry", registry)
    govern(chain, registry, "approve", dev_account(7).address, other)
    assert f"approved for {dev_account(7).address} only" in refused("kb", "sync", never, "--registry", registry)
    expired = write("expired.json", other, expiry=5)
    assert "expired at 5" in refused("kb", "sync", expired, "--registry", registry)
    forged = json.loads(Path(never).read_text())
    forged["contributor"] = dev_account(7).address  # dev:5 signed it, claiming to be dev:7, who is approved
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert "it is forged" in refused("kb", "sync", str(tmp_path / "forged.json"), "--registry", registry)
    # Approved for dev:5 and revoked before the request is synced.
    govern(chain, registry, "approve", contributor.address, other)
    govern(chain, registry, "revoke", contributor.address, other)
    assert "was revoked at block" in refused("kb", "sync", never, "--registry", registry)
    # Approved, signed, but the only bytes there do not hash to the CID.
    govern(chain, registry, "approve", contributor.address, other)
    block = LocalStore()._path(CID.parse(other))
    block.write_bytes(block.read_bytes().replace(b"oil", b"gas"))
    err = refused("kb", "sync", never, "--registry", registry)
    assert f"cannot ingest {other}" in err and "nothing was ingested" in err
    assert kb_snapshot() == before
    # One bad request among good ones: nothing of any of them is ingested.
    good = add_to_ipfs("# Wax\n\nWax should be stored cool.\n")
    govern(chain, registry, "approve", contributor.address, good)
    fine = write("fine.json", good)
    assert "cannot ingest" in refused("kb", "sync", fine, never, "--registry", registry)
    assert kb_snapshot() == before
    assert "1 ingested" in ok("kb", "sync", fine, "--registry", registry)


def verify_checks(assertion_id: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = run("verify", assertion_id, "--json")
    return result.exit_code, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_verify_checks_every_cited_document_was_approved_at_the_manifests_block(
    governed: tuple[LocalChain, str, str],
) -> None:
    _chain, registry, request = governed
    ok("kb", "sync", request, "--registry", registry)
    out = json.loads(ok("ask", QUESTION, "--json"))
    code, checks = verify_checks(str(out["assertion_id"]))
    assert code == 0 and checks["governed_context"]["status"] == "pass" and checks["claim"]["status"] == "pass"
    assert f"approved by the KnowledgeRegistry {registry} on chain 31337" in checks["governed_context"]["detail"]
    # An asserter slips a document the registry never approved into its governed KB, and answers from it.
    text = "# Lamps\n\nThe lamp oil should be replaced every week.\n"
    cid = add_to_ipfs(text)
    unsigned = IngestRequest(31337, registry, cid, dev_account(CONTRIBUTOR).address, 1, 10**10, "0x" + "00" * 65)
    with KnowledgeBase(document_store=LocalStore()) as kb:
        gov = kb.governance()
        assert gov is not None
        kb.sync_governed(gov, [(unsigned, text.encode())], [])
    out = json.loads(ok("ask", "How often should the lamp oil be replaced?", "--json"))
    aid = str(out["assertion_id"])
    code, checks = verify_checks(aid)
    assert code == 1 and checks["governed_context"]["status"] == "fail", checks
    assert f"at block {gov.block}: {cid}" in checks["governed_context"]["detail"]
    assert all(checks[name]["status"] == "pass" for name in ("context", "corpus", "claim", "signature"))
    # Its claim names the governed rules (v3), so the disputer disputes it on that check alone.
    with Ledger() as ledger:
        made = ledger.find(aid)
    assert made.rules_cid == rules_cid(governed=True) and made.claim is not None
    assert b'5. Its \\"corpus\\" manifest names a KnowledgeRegistry' in made.claim
    (_chain.home / "config.toml").write_text("[disputer]\nvote = false\n")
    scored = CliRunner().invoke(disputer_cli, ["score", aid, "--dispute", "--json"], catch_exceptions=False)
    data = json.loads(scored.output)
    assert data["decision"]["action"] == "dispute" and data["judge"] is None, data
    assert [c.split(":")[0] for c in data["failed_checks"]] == ["governed_context"]
    assert data["txs"] and all(tx["status"] == "mined" for txs in data["txs"].values() for tx in txs)
    # The export shows what each claim asserted about governance.
    exported = [json.loads(line) for line in ok("export", "--format", "jsonl", "-o", "-").splitlines()]
    assert [row["governance"] for row in exported] == [{**gov.as_dict(), "claimed": True}] * 2


def test_the_dashboard_shows_the_governance_and_the_governed_context_check(
    governed: tuple[LocalChain, str, str],
) -> None:
    chain, registry, request = governed
    ok("kb", "sync", request, "--registry", registry)
    cid = json.loads(Path(request).read_text())["cid"]
    out = json.loads(ok("ask", QUESTION, "--json"))
    aid, record = str(out["assertion_id"]), str(out["record_cid"])
    with KnowledgeBase() as kb:
        gov = kb.governance()
    assert gov is not None
    app = create_app("local", scan=False)
    state = app.state.dashboard
    with state.index() as index:
        state.scan_once(index)
    assert state.chain_error is None
    contributor = dev_account(CONTRIBUTOR).address
    with TestClient(app, raise_server_exceptions=False) as c:
        page = c.get("/kb").text
        assert f'<dt>registry</dt><dd><code class="wrap">{registry}</code></dd>' in page
        assert "<dt>chain id</dt><dd>31337</dd>" in page and f"read at block</dt><dd>{gov.block}</dd>" in page
        assert (
            f'<code class="wrap">{contributor}</code></td><td><span class="status status-pass">PASS</span> approved'
            in page
        )
        governed_check = '<span class="status status-pass">PASS</span></td><td>governed_context</td><td>all 1 cited'
        for path in (f"/record/{record}", f"/assertion/{aid}"):
            shown = c.get(path)
            assert shown.status_code == 200 and governed_check in shown.text, path
        # Revoked on chain, not synced yet: the page says so from the registry, not from the KB.
        govern(chain, registry, "revoke", contributor, cid)
        assert "WARN</span> approved at the KB&#39;s block, revoked since: the next" in c.get("/kb").text


def test_the_dao_approves_a_document_a_signed_request_ingests_it_and_an_answer_cites_it(
    local_chain: LocalChain, tmp_path: Path
) -> None:
    """The devnet's own DAO (no --registry): propose → vote → queue → execute, then request → sync → ask → verify."""
    cid = add_to_ipfs((KB_DOCS / "guide.md").read_text())
    contributor = dev_account(CONTRIBUTOR).address
    ok("kb", "propose", cid, "--contributor", contributor, "--account", "dev:1")
    (proposal,) = json.loads(ok("dao", "proposals", "--json"))
    ok("devnet", "advance", "--blocks", "2")
    ok("dao", "vote", proposal["id"], "--support", "for", "--account", "dev:1")
    ok("devnet", "advance", "--blocks", "10")
    ok("dao", "queue", proposal["id"], "--account", "dev:1")
    request = str(tmp_path / "request.json")
    ok("kb", "request", cid, "--account", f"dev:{CONTRIBUTOR}", "-o", request)
    assert "never approved" in refused("kb", "sync", request)  # queued is not executed
    ok("devnet", "advance", "61s")
    ok("dao", "execute", proposal["id"], "--account", "dev:1")
    synced = json.loads(ok("kb", "sync", request, "--json"))
    assert synced["ingested"][0]["cid"] == cid
    assert synced["governance"]["registry"] == local_chain.deployment.kb_registry
    out = json.loads(ok("ask", QUESTION, "--json"))
    code, checks = verify_checks(str(out["assertion_id"]))
    assert code == 0 and checks["governed_context"]["status"] == "pass", checks
    assert checks["governed_context"]["detail"].startswith("all 1 cited document(s) were approved")
    # A governed document has no path: the sources list names it by its CID, once.
    shown = ok("ask", QUESTION, "--no-assert").splitlines()
    (source,) = [line for line in shown if line.startswith("  [1] ")]
    assert source.startswith(f"  [1] ipfs://{cid}") and source.count(cid) == 1, source


def test_the_governed_claim_adds_statement_five_and_keeps_v1_claims_as_they_were() -> None:
    asserter, digest = dev_account(1).address, "0x" + "ab" * 32
    governed_claim = build_claim(CID_ONE, digest, asserter, rules_cid(governed=True), "é" * 3000)
    parsed = parse_claim(governed_claim)
    assert governed_rules(parsed.rules_cid) and len(governed_claim) <= MAX_CLAIM_BYTES
    assert ui_view(governed_claim) == (parsed.title, parsed.description)
    assert '5. Its "corpus" manifest names a KnowledgeRegistry' in parsed.description
    v1 = parse_claim(build_claim(CID_ONE, digest, asserter, rules_cid(), "q"))
    assert not governed_rules(v1.rules_cid) and "5. " not in v1.description
    assert v1.description.endswith("A record that cannot be fetched or decoded makes this assertion FALSE.")
    assert "\n\nThe title quotes" in v1.description  # the v1 wording, byte for byte
    assert rules_bytes(governed=True).startswith(b"# llm-attest claim rules, version 3")


def test_request_and_sync_inputs(governed: tuple[LocalChain, str, str]) -> None:
    _chain, registry, request = governed
    cid = json.loads(Path(request).read_text())["cid"]
    assert "must be positive" in refused("kb", "request", cid, "--account", "dev:5", "--expires", "0")
    assert "is not a duration" in refused("kb", "request", cid, "--account", "dev:5", "--expires", "soon")
    assert "is not a CID" in refused("kb", "request", "bafy-not-a-cid", "--account", "dev:5")
    assert "cannot read the request" in refused("kb", "sync", "/nonexistent/request.json")
    assert "is not JSON" in refused("kb", "sync", str(KB_DOCS / "guide.md"))
    piped = CliRunner(mix_stderr=False).invoke(
        cli, ["kb", "sync", "-", "--registry", registry, "--json"], input=Path(request).read_text()
    )
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["ingested"][0]["cid"] == cid
