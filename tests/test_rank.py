"""Compare → rank → export → verify: two answers from one context (a fake OpenAI server answering as two
models), each signed and pinned; the configured account's signed preference, its supersession, the datasets."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from attest.cli import cli
from attest.errors import PreferenceError
from attest.ledger import Ledger
from attest.record.codec import decode_record
from attest.record.preference import (
    PREFERENCE_SCHEMA_FILE,
    decode_preference,
    render_preference_schema,
)
from tests.conftest import LocalChain
from tests.support.llm_fakes import FakeModelServer

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"
ANSWER_A = "Trim the wick every 4 hours of burning [1]."
ANSWER_B = "The wick should be trimmed before each use [1]."


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def refused(*args: str) -> str:
    """The one-line message of the PreferenceError a command ends with (run_cli prints it as one line)."""
    result = CliRunner().invoke(cli, list(args))
    assert isinstance(result.exception, PreferenceError), result.output
    message = str(result.exception)
    assert "\n" not in message
    return message


def ok(*args: str, stdin: str | None = None) -> str:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def fake(attest_home: str, monkeypatch: pytest.MonkeyPatch) -> FakeModelServer:
    ok("kb", "add", str(KB_DOCS))
    with FakeModelServer("openai", texts=[ANSWER_A, ANSWER_B, ANSWER_A, ANSWER_B]) as server:
        Path(attest_home, "config.toml").write_text(
            f'[llm]\nprovider = "openai"\nbase_url = "{server.base_url}"\n', encoding="utf-8"
        )
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield server


def compare() -> dict[str, object]:
    return json.loads(ok("ask", QUESTION, "--compare", "--model", "gpt-a", "--vs-model", "gpt-b", "--json"))


def test_compare_pins_two_answers_from_one_context_as_a_pair(fake: FakeModelServer) -> None:
    out = compare()
    answers = out["answers"]
    assert isinstance(answers, list) and [a["answer"] for a in answers] == [ANSWER_A, ANSWER_B]
    assert [r.body["model"] for r in fake.requests] == ["gpt-a", "gpt-b"]
    with Ledger() as ledger:
        first, second = (ledger.get(int(a["id"])) for a in answers)
    assert first.status == second.status == "pinned" and first.assertion_id is None and not first.want_assert
    one, two = decode_record(first.record), decode_record(second.record)
    assert one.context == two.context and one.context and one.query == two.query == QUESTION
    assert (one.model.requested_model, two.model.requested_model) == ("gpt-a", "gpt-b")
    assert out["pair"] == 1
    text = ok("ask", QUESTION, "--compare")  # no --vs-*: two samples of one model
    assert "Pair #2: rank it with `attest rank 2`" in text and "│" in text
    samples = [r.body["model"] for r in fake.requests[2:]]
    assert len(samples) == 2 and samples[0] == samples[1]


def test_rank_by_flag_then_change_of_mind_supersedes(fake: FakeModelServer) -> None:
    compare()
    out = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "2", "--reason", "cites the passage", "--json"))
    record = decode_preference(Path_bytes(out["preference_cid"]))
    with Ledger() as ledger:
        first, second = ledger.get(1), ledger.get(2)
    assert [(r.cid, r.digest) for r in record.pair] == [(first.cid, first.digest), (second.cid, second.digest)]
    assert record.choice == "2" and record.reason == "cites the passage" and record.supersedes is None
    again = refused("rank", "1", "--prefer", "1")
    assert "already ranked pair #1" in again and "--change" in again
    changed = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "tie", "--change", "--json"))
    assert changed["supersedes"] == out["preference_cid"] and changed["choice"] == "tie"


def test_rank_interactively_through_the_prompt(fake: FakeModelServer) -> None:
    compare()
    text = ok("rank", "1", "--no-anchor", stdin="x\nt\nboth fine\n")
    assert ANSWER_A in text.replace("\n", " ") or "Trim the wick" in text
    assert "Pair #1: a tie, signed by" in text
    cid = text.split("preference  ipfs://")[1].split()[0]
    assert "both fine" in ok("verify", cid)
    report = json.loads(ok("verify", cid, "--json"))
    assert report["kind"] == "preference" and report["ok"] is True
    assert [c["ok"] for c in report["checks"]] == [True, True, True, True, True, None]


def test_bad_rankings_are_one_line_errors_and_write_nothing(fake: FakeModelServer) -> None:
    compare()
    for args, message in [
        (("rank", "7", "--prefer", "1"), "7 is not a pair of answers"),
        (("rank", "1", "--prefer", "1", "--account", "dev:3"), "is not the account configured for ranking"),
    ]:
        assert message in refused(*args)
    with Ledger() as ledger, ledger.transaction() as db:
        assert db.execute("SELECT count(*) FROM preferences").fetchone()[0] == 0


def test_preference_schema_file_matches_the_model() -> None:
    assert PREFERENCE_SCHEMA_FILE.read_text(encoding="utf-8") == render_preference_schema()


def Path_bytes(cid: object) -> bytes:
    from attest.ipfs.cid import CID
    from attest.ipfs.local import LocalStore

    return LocalStore().get(CID.parse(str(cid)))


def test_export_dpo_and_trust_and_teach_shapes(fake: FakeModelServer, tmp_path: Path) -> None:
    compare()
    compare()
    first = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "2", "--json"))
    current = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "1", "--change", "--reason", "shorter", "--json"))
    tie = json.loads(ok("rank", "2", "--no-anchor", "--prefer", "tie", "--json"))
    dpo = [json.loads(line) for line in ok("export", "--format", "dpo").splitlines()]
    assert len(dpo) == 1  # the tie is left out, the superseded ranking is not exported
    (row,) = dpo
    assert set(row) == {
        "prompt", "chosen", "rejected", "chosen_cid", "rejected_cid", "preference_cid", "ranker", "anchor_tx",
        "anchor_receipt",
    }  # fmt: skip
    assert row["anchor_tx"] == row["anchor_receipt"] == ""  # ranked with --no-anchor
    assert (
        row["chosen"] == ANSWER_A and row["rejected"] == ANSWER_B and row["preference_cid"] == current["preference_cid"]
    )
    assert row["prompt"].startswith("Context:\n[1] (") and row["prompt"].endswith(f"Question: {QUESTION}")
    with Ledger() as ledger:
        assert (row["chosen_cid"], row["rejected_cid"]) == (ledger.get(1).cid, ledger.get(2).cid)
    tt = json.loads(ok("export", "--format", "tt-json"))
    assert [(r["rank"], r["preference_cid"]) for r in tt] == [
        ("confirm", current["preference_cid"]),
        ("tie", tie["preference_cid"]),
    ]
    assert first["preference_cid"] not in json.dumps(tt)
    out = tmp_path / "tt.tsv"
    ok("export", "--format", "tt-tsv", "-o", str(out))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[0].split("\t")[:4] == ["prompt", "response_0", "response_1", "rank"]
    assert [line.split("\t")[3] for line in lines[1:]] == ["confirm", "tie"]
    assert all(line.count("\t") == lines[0].count("\t") for line in lines)


def test_verify_refuses_a_preference_naming_a_tampered_or_missing_answer(fake: FakeModelServer) -> None:
    from attest.accounts import dev_account
    from attest.ipfs.local import LocalStore
    from attest.record.preference import encode_preference, sign_preference, validate_preference

    compare()
    good = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "1", "--json"))
    assert "all checks passed" in ok("verify", good["preference_cid"])
    ranker = dev_account(1)
    refs = good["answers"]
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    for pair, expected in [
        ([refs[0], {**refs[1], "digest": "0x" + "00" * 32}], "is not the ranked 0x0000"),
        ([refs[0], {**refs[1], "cid": missing}], f"ipfs://{missing}: {missing} was not found"),
    ]:
        record = validate_preference(
            {"schema": "llm-attest/preference/v1", "pair": pair, "choice": "1", "ranker": ranker.address,
             "reason": None, "supersedes": None, "created_at": "2026-01-01T00:00:00Z"}
        )  # fmt: skip
        cid = str(LocalStore().put(encode_preference(sign_preference(record, ranker))))
        result = CliRunner().invoke(cli, ["verify", cid])
        assert result.exit_code == 1 and expected in result.output and "FAIL" in result.output, result.output


@pytest.mark.integration
def test_compare_asserts_both_answers_only_with_assert(local_chain: LocalChain, fake: FakeModelServer) -> None:
    out = json.loads(ok("ask", QUESTION, "--compare", "--assert", "--vs-model", "gpt-b", "--json"))
    answers = out["answers"]
    assert isinstance(answers, list)
    ids = [str(a["assertion_id"]) for a in answers]
    assert all(i.startswith("0x") and len(i) == 66 for i in ids) and ids[0] != ids[1]
    with Ledger() as ledger:
        assert [ledger.get(int(a["id"])).status for a in answers] == ["asserted", "asserted"]


def test_rank_refuses_a_pair_whose_answer_was_tampered_in_the_ledger(fake: FakeModelServer) -> None:
    compare()
    with Ledger() as ledger, ledger.transaction() as db:
        record = ledger.get(2).record
        db.execute("UPDATE attestations SET record = ? WHERE id = 2", (record.replace(b"before", b"after!"),))
    assert "signature" in refused("rank", "1", "--prefer", "1")
    with Ledger() as ledger, ledger.transaction() as db:
        assert db.execute("SELECT count(*) FROM preferences").fetchone()[0] == 0


def test_rank_on_a_terminal_takes_one_key_press(fake: FakeModelServer) -> None:
    """A real process on a pseudo-terminal: a stray key is ignored, `2` picks at once (no Enter)."""
    compare()
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "attest", "rank", "1", "--no-anchor"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""

    def wait_for(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([primary], [], [], 1)[0]:
                seen += os.read(primary, 4096)

    try:
        wait_for(b"Prefer 1, 2 or t (tie): ")
        time.sleep(0.5)  # the terminal goes raw after the prompt is written; keys before that would be flushed
        os.write(primary, b"x")  # one key per read, as typed: getchar returns what one read holds
        time.sleep(0.5)
        os.write(primary, b"2")
        wait_for(b"Reason")
        os.write(primary, b"shorter\r")
        wait_for(b"preference  ipfs://")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(OSError):
            seen += os.read(primary, 4096)
        os.close(primary)
    with Ledger() as ledger, ledger.transaction() as db:
        rows = db.execute("SELECT choice FROM preferences").fetchall()
    assert [r[0] for r in rows] == ["2"]
    cid = seen.decode().split("preference  ipfs://")[1].split()[0]
    assert decode_preference(Path_bytes(cid)).reason == "shorter"


def test_rank_account_config_key_names_the_ranker(fake: FakeModelServer, attest_home: str) -> None:
    from attest.accounts import load_account

    config = Path(attest_home, "config.toml")
    config.write_text(config.read_text(encoding="utf-8") + '[rank]\naccount = "dev:3"\n', encoding="utf-8")
    compare()
    ranker = load_account("dev:3", "local").account.address
    message = refused("rank", "1", "--prefer", "1", "--account", "dev:0")
    assert ranker in message and "set [rank] account" in message
    out = json.loads(ok("rank", "1", "--no-anchor", "--prefer", "1", "--account", "dev:3", "--json"))
    assert out["ranker"] == ranker
