"""`attest kb …` through its click group, on a knowledge base and a local store under a temporary ATTEST_HOME."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from attest.cli.kb import kb
from attest.errors import IngestError, KbError
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.kb import KnowledgeBase

GOOD = Path(__file__).parent / "fixtures" / "kb" / "good"
BAD = Path(__file__).parent / "fixtures" / "kb" / "bad"


@pytest.fixture
def home(attest_home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATTEST_CONFIG", str(tmp_path / "no-config.toml"))
    return Path(attest_home)


def run(*args: str) -> Result:
    return CliRunner().invoke(kb, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_add_prints_what_changed_and_a_summary(home: Path) -> None:
    out = ok("add", str(GOOD))
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "CHUNKS", "CID", "SOURCE"]
    assert [line.split()[-1] for line in lines[1:-1]] == [
        "good/guide.md",
        "good/nested/anchors.md",
        "good/notes.txt",
        "good/page.html",
    ]
    assert lines[-1].startswith("4 document(s): 4 added, 0 replaced, 0 unchanged;")
    again = lines[-1].replace("4 added", "0 added").replace("0 unchanged", "4 unchanged")
    assert ok("add", str(GOOD)).splitlines() == [again]
    assert (home / "kb.sqlite3").is_file()


def test_add_a_cid_from_the_local_store(home: Path) -> None:
    cid = LocalStore().put((GOOD / "notes.txt").read_bytes())
    out = ok("add", str(cid))
    assert f"ipfs://{cid}" in out and "1 added" in out
    assert ok("list", "--json") and json.loads(ok("list", "--json"))[0]["source"] == f"ipfs://{cid}"


def test_a_bad_target_changes_nothing(home: Path, tmp_path: Path) -> None:
    mixed = Path(shutil.copytree(GOOD, tmp_path / "mixed"))
    shutil.copy(BAD / "latin1.txt", mixed / "latin1.txt")
    result = run("add", str(mixed))
    assert isinstance(result.exception, IngestError) and "latin1.txt is not UTF-8" in str(result.exception)
    result = run("add", str(GOOD), "no-such-file-or-cid")
    assert isinstance(result.exception, IngestError) and "neither a file or folder that exists nor a CID" in str(
        result.exception
    )
    absent = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"
    result = run("add", absent)
    assert isinstance(result.exception, IngestError) and "not found" in str(result.exception)
    assert json.loads(ok("list", "--json")) == []


def test_search_prints_ranked_sources_and_json_with_full_texts(home: Path) -> None:
    ok("add", str(GOOD))
    out = ok("search", "semaphore", "numerals", "-k", "2")
    first = out.splitlines()[0]
    assert first.startswith("1. ") and "good/page.html#" in first and "(Semaphore Signals" in first
    hits = json.loads(ok("search", "--json", "foghorn"))
    assert hits[0]["source"] == "good/guide.md" and "foghorn" in hits[0]["text"]
    assert hits[0]["sha256"] == hashlib.sha256(hits[0]["text"].encode()).hexdigest()
    assert hits[0]["heading_path"][0] == "Lighthouse Keeping Guide" and hits[0]["score"] > 0
    assert ok("search", "nothing-matches-this").strip() == "No chunk matches."
    assert run("search", "x", "-k", "0").exit_code == 2  # click refuses it before the KB is opened


def test_search_takes_top_k_as_ask_does_and_shows_small_scores_readably(home: Path) -> None:
    ok("add", str(GOOD))
    assert ok("search", "the", "--top-k", "2") == ok("search", "the", "-k", "2")
    lines = [line for line in ok("search", "the", "--top-k", "2").splitlines() if line[:1].isdigit()]
    assert len(lines) == 2
    for line, hit in zip(lines, json.loads(ok("search", "--json", "the", "-k", "2")), strict=True):
        shown = float(line.split()[2])  # "1. score 4.1e-06  good/…"
        assert line.split()[1] == "score" and shown == pytest.approx(hit["score"], rel=5e-3) and shown > 0


def test_list_stats_and_remove(home: Path) -> None:
    assert "empty" in ok("list")
    ok("add", str(GOOD))
    table = ok("list").splitlines()
    assert table[0].split()[:4] == ["SOURCE", "CHUNKS", "TYPE", "CID"] and len(table) == 5
    stats = json.loads(ok("stats", "--json"))
    assert stats["documents"] == 4 and stats["path"] == str(home / "kb.sqlite3")
    assert "documents         4 (text/html 1, text/markdown 2, text/plain 1)" in ok("stats")
    assert ok("remove", "good/notes.txt").strip() == "removed good/notes.txt"
    assert json.loads(ok("stats", "--json"))["documents"] == 3
    result = run("remove", "good/notes.txt")
    assert isinstance(result.exception, KbError)


def test_manifest_pins_to_the_local_store_and_prints_its_cid(home: Path) -> None:
    ok("add", str(GOOD))
    cid = ok("manifest").strip()
    with KnowledgeBase() as base:
        assert cid == base.manifest_cid()
        expected = base.manifest_bytes()
    assert LocalStore().is_pinned(CID.parse(cid)) and LocalStore().get(CID.parse(cid)) == expected
    shown = json.loads(ok("manifest", "--json"))
    assert shown["cid"] == cid and len(shown["manifest"]["documents"]) == 4
