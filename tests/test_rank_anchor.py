"""The on-chain anchor of preferences on the devnet: `attest rank` anchors at once, `attest rank anchor` anchors
many in one transaction, `attest verify` checks the event, the proof and the ranker (from the ledger, from a
pinned anchor receipt, or by log query), a crash between signing and recording never anchors twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from web3 import Web3

from attest.batch.anchors import AnchorBook
from attest.chain.abi import event
from attest.chain.outbox import CRASH_ENV
from attest.cli import cli
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.test_rank import compare, fake, ok  # noqa: F401  (fake: the two-model fixture, used by every test)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake")]


def verify(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["verify", *args, "--json"])
    return result.exit_code, json.loads(result.output)


def anchor_check(*args: str) -> dict[str, object]:
    code, report = verify(*args)
    checks = report["checks"]
    assert isinstance(checks, list)
    (check,) = [c for c in checks if c["name"] == "anchor"]
    assert (code == 0) == (check["ok"] is not False), report
    return dict(check)


def anchored_events(chain: LocalChain, ranker: str) -> list[object]:
    anchored = event("AttestationRegistry", "Anchored")
    by = bytes(12) + bytes.fromhex(ranker[2:])
    query = {"address": chain.deployment.registry, "fromBlock": 0, "topics": [anchored.topic, by]}
    return list(chain.w3.eth.get_logs(query))  # type: ignore[arg-type]


def test_rank_anchors_its_preference_at_once_and_verify_passes(local_chain: LocalChain) -> None:
    compare()
    out = json.loads(ok("rank", "1", "--prefer", "1", "--json"))
    anchor = out["anchor"]
    assert out["anchor_error"] is None and anchor["tx"].startswith("0x") and len(anchor["preferences"]) == 1
    receipt = local_chain.w3.eth.get_transaction_receipt(anchor["tx"])
    assert receipt["status"] == 1 and Web3.to_checksum_address(receipt["from"]) == out["ranker"]
    check = anchor_check(out["preference_cid"])
    assert check["ok"] is True and "anchored alone by the ranker in block" in str(check["detail"])
    with Ledger() as ledger, ledger.transaction() as db:
        row = db.execute("SELECT anchor_root, anchor_proof, anchor_tx, anchor_block FROM preferences").fetchone()
    assert (row[0], json.loads(row[1]), row[2], row[3]) == (anchor["root"], [], anchor["tx"], anchor["block"])
    text = ok("verify", out["preference_cid"])
    assert "OK       anchor" in text and "all checks passed" in text


def test_rank_anchor_anchors_three_preferences_in_one_transaction(local_chain: LocalChain) -> None:
    cids = []
    for n in range(3):
        compare()
        out = json.loads(ok("rank", str(n + 1), "--no-anchor", "--prefer", "tie" if n == 2 else "1", "--json"))
        assert out["anchor"] is None
        cids.append(out["preference_cid"])
        assert anchor_check(out["preference_cid"])["ok"] is None  # PENDING: not anchored yet
    assert "PENDING  anchor" in ok("verify", cids[0])
    (anchor,) = json.loads(ok("rank", "anchor", "--json"))["anchors"]
    assert [p["cid"] for p in anchor["preferences"]] == cids
    assert len(anchored_events(local_chain, anchor["ranker"])) == 1  # one event for the three
    for cid in cids:
        check = anchor_check(cid)
        assert check["ok"] is True and "one of 3" in str(check["detail"]) and anchor["tx"] in str(check["detail"])
    assert "Nothing to anchor" in ok("rank", "anchor")
    rows = json.loads(ok("export", "--format", "tt-json"))
    receipts = {p["cid"]: p["receipt"] for p in anchor["preferences"]}
    assert [(r["anchor_tx"], r["anchor_receipt"]) for r in rows] == [(anchor["tx"], receipts[c]) for c in cids]


def test_a_tampered_proof_or_root_fails(local_chain: LocalChain, tmp_path: Path) -> None:
    for n in range(2):
        compare()
        ok("rank", str(n + 1), "--no-anchor", "--prefer", "2")
    (anchor,) = json.loads(ok("rank", "anchor", "--json"))["anchors"]
    first = anchor["preferences"][0]
    receipt = json.loads(LocalStore().get(CID.parse(first["receipt"])))
    assert len(receipt["proof"]) == 1 and receipt["root"] == anchor["root"]
    flipped = "0x" + ("0" if receipt["proof"][0][2] != "0" else "1") + receipt["proof"][0][3:]
    for field, value, expected in [
        ("proof", [flipped], "the proof does not place"),
        ("root", "0x" + "ab" * 32, "the proof does not place"),
        ("tx", "0x" + "cd" * 32, "was not found"),
    ]:
        forged = tmp_path / f"{field}.json"
        forged.write_text(json.dumps({**receipt, field: value}), encoding="utf-8")
        check = anchor_check(first["cid"], "--anchor", str(forged))
        assert check["ok"] is False and expected in str(check["detail"]), check
    # The ledger's own copy tampered with: the same check fails.
    with Ledger() as ledger, ledger.transaction() as db:
        db.execute("UPDATE preferences SET anchor_proof = ? WHERE cid = ?", (json.dumps([flipped]), first["cid"]))
    assert anchor_check(first["cid"])["ok"] is False
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**receipt, "preference": anchor["preferences"][1]["cid"]}), encoding="utf-8")
    assert "not an anchor receipt of this preference" in str(
        anchor_check(first["cid"], "--anchor", str(other))["detail"]
    )


@pytest.mark.parametrize(
    "crash_at", ["anchor-created", "anchor-signed", "anchor-sent", "anchor-mined", "anchor-recorded"]
)
def test_a_crash_while_anchoring_resumes_to_exactly_one_anchor(local_chain: LocalChain, crash_at: str) -> None:
    cids = []
    for n in range(2):
        compare()
        cids.append(json.loads(ok("rank", str(n + 1), "--no-anchor", "--prefer", "1", "--json"))["preference_cid"])
    crashed = subprocess.run(
        [sys.executable, "-m", "attest", "rank", "anchor"],
        env={**os.environ, CRASH_ENV: crash_at},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 137, crashed.stderr
    (anchor,) = json.loads(ok("rank", "anchor", "--json"))["anchors"]
    assert [p["cid"] for p in anchor["preferences"]] == cids
    assert "Nothing to anchor" in ok("rank", "anchor")
    assert len(anchored_events(local_chain, anchor["ranker"])) == 1
    with Ledger() as ledger:
        book = AnchorBook(ledger.database)
        assert [t.status for t in book.txs(anchor["id"])] == ["mined"]  # signed once, never again
        assert book.open() == []  # every receipt pinned
    assert all(p["receipt"] for p in anchor["preferences"])
    assert all(anchor_check(cid)["ok"] is True for cid in cids)


def test_a_third_party_verifies_from_the_pinned_receipt(
    local_chain: LocalChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(2):
        compare()
        ok("rank", str(n + 1), "--no-anchor", "--prefer", "1")
    (anchor,) = json.loads(ok("rank", "anchor", "--json"))["anchors"]
    compare()
    alone = json.loads(ok("rank", "3", "--prefer", "2", "--json"))
    store = LocalStore()
    with Ledger() as ledger:
        answers = [ledger.get(i).cid for i in range(1, 7)]
    published = {
        c: store.get(CID.parse(str(c)))
        for c in [*answers, *(p[k] for p in anchor["preferences"] for k in ("cid", "receipt")), alone["preference_cid"]]
    }
    # Someone else: no ledger, the same chain, the blocks as IPFS would serve them.
    home = tmp_path / "third-party"
    home.mkdir()
    (home / "devnet").symlink_to(local_chain.home / "devnet", target_is_directory=True)
    monkeypatch.setenv("ATTEST_HOME", str(home))
    for data in published.values():
        LocalStore().put(data)
    first = anchor["preferences"][0]
    check = anchor_check(first["cid"], "--anchor", first["receipt"])
    assert check["ok"] is True and "one of 2" in str(check["detail"])
    # Without its receipt, a preference anchored with others cannot be found: pending, not passed.
    assert "--anchor RECEIPT" in str(anchor_check(first["cid"])["detail"])
    # Anchored alone (the default), the CID is enough: the root is its leaf, found by log query.
    assert anchor_check(alone["preference_cid"])["ok"] is True


def test_two_rank_anchor_processes_at_once_send_one_anchor(local_chain: LocalChain) -> None:
    for n in range(2):
        compare()
        ok("rank", str(n + 1), "--no-anchor", "--prefer", "1")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "attest", "rank", "anchor", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    anchors = [a for out in outputs for a in out["anchors"]]
    assert len({a["tx"] for a in anchors}) == 1  # the second found the first's anchor, or nothing left to anchor
    assert len(anchored_events(local_chain, anchors[0]["ranker"])) == 1


def test_rank_anchor_takes_no_ranking_options(attest_home: str) -> None:
    result = CliRunner().invoke(cli, ["rank", "anchor", "--prefer", "1"])
    assert result.exit_code == 2 and "`attest rank anchor` takes only --json" in result.output


def test_a_registry_without_anchor_leaves_the_preference_pending_until_one_has_it(local_chain: LocalChain) -> None:
    compare()
    w3, registry = local_chain.w3, local_chain.deployment.registry
    ours = w3.eth.get_code(registry).to_0x_hex()
    older = w3.eth.get_code(local_chain.deployment.oov3).to_0x_hex()  # any contract without anchor()
    w3.provider.make_request("anvil_setCode", [registry, older])  # type: ignore[arg-type]
    result = CliRunner().invoke(cli, ["rank", "1", "--prefer", "1"])
    assert result.exit_code == 1, result.output
    assert "signed and pinned, but not anchored" in result.output and "`attest registry deploy`" in result.output
    cid = result.output.split("preference  ipfs://")[1].split()[0]
    check = anchor_check(cid)
    assert check["ok"] is None and "is not mined yet" in str(check["detail"])
    w3.provider.make_request("anvil_setCode", [registry, ours])  # type: ignore[arg-type]
    (anchor,) = json.loads(ok("rank", "anchor", "--json"))["anchors"]
    assert [p["cid"] for p in anchor["preferences"]] == [cid] and anchor_check(cid)["ok"] is True
