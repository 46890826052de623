"""Secrets end to end: every command a user runs, with known fake secrets in the environment, and then every byte
the run left behind is searched for them.

The secrets: ATTEST_PRIVATE_KEY (a funded devnet key, which the asserting really comes from), OPENAI_API_KEY and
ANTHROPIC_API_KEY (fake values, not shaped like real keys), and a pinning service token. The fake model server and
the fake pinning service both quote the credential they were sent in their error bodies, as careless services do,
so any path that lets server text through would leak here. Searched: stdout and stderr of every command (the
`attest` and `disputer` CLIs as subprocesses), every file under ATTEST_HOME (logs, ledgers, keystores, pinned
blocks), every text and blob value of every SQLite table there, and the exported files.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from attest.accounts import ENV_KEY_WARNING
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from tests.conftest import LocalChain
from tests.support.ipfs_services import FakePinningService
from tests.support.llm_fakes import FakeModelServer

REPO = Path(__file__).resolve().parent.parent
KB = REPO / "tests" / "fixtures" / "kb" / "good"
QUERY = "How often should the wick be trimmed?"
ANSWER = "Trim the wick every four hours [1]."
VERDICT = json.dumps({"score": 0.9, "rationale": "Supported by passage [1]."})
PINNING_TOKEN_ENV = "ATTEST_PINNING_TOKEN"


@dataclass
class Run:
    """Every command's output, kept for the scan."""

    env: dict[str, str]
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, stdout + stderr)

    def __call__(self, *args: str, disputer: bool = False, ok: bool = True) -> subprocess.CompletedProcess[str]:
        entry = ["-c", "from disputer.cli import main; main()"] if disputer else ["-m", "attest"]
        done = subprocess.run(
            [sys.executable, *entry, *args], env=self.env, capture_output=True, text=True, timeout=180, cwd=REPO
        )
        name = ("disputer " if disputer else "attest ") + " ".join(args)
        self.outputs.append((name, done.stdout + "\n" + done.stderr))
        assert (done.returncode == 0) is ok, f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


@dataclass(frozen=True)
class Secrets:
    key: LocalAccount
    openai: str
    anthropic: str
    pinning: str

    def forms(self) -> dict[str, bytes]:
        """Every form a secret could be written in: the key in hex with and without 0x, either case, and raw."""
        raw = bytes(self.key.key)
        hexed = raw.hex()
        return {
            "private key 0x-hex": ("0x" + hexed).encode(),
            "private key hex": hexed.encode(),
            "private key HEX": hexed.upper().encode(),
            "private key raw bytes": raw,
            "OPENAI_API_KEY": self.openai.encode(),
            "ANTHROPIC_API_KEY": self.anthropic.encode(),
            "pinning token": self.pinning.encode(),
        }


@pytest.fixture
def fake_secrets(dev_keys: list[LocalAccount]) -> Secrets:
    # Fresh random values each run, never shaped like a real provider key (no "sk-" prefix).
    return Secrets(
        key=dev_keys[4],  # funded by the devnet, and not dev:1, the default asserter: the record proves which signed
        openai=f"fake-openai-key-{secrets.token_hex(16)}",
        anthropic=f"fake-anthropic-key-{secrets.token_hex(16)}",
        pinning=f"fake-pinning-token-{secrets.token_hex(16)}",
    )


@pytest.fixture
def services(fake_secrets: Secrets) -> Iterator[tuple[FakeModelServer, FakePinningService]]:
    # Request 0: the answer to `attest ask`. Request 1: a 401 that quotes the key back. Then verdicts for the judge.
    model = FakeModelServer("openai", statuses=[200, 401], texts=[ANSWER], body=_verdict_body())
    with model, FakePinningService(fake_secrets.pinning) as pinning:
        yield model, pinning


def _verdict_body() -> dict[str, object]:
    from tests.support.llm_fakes import text_body

    return text_body("openai", VERDICT)


def test_no_secret_appears_anywhere_after_a_full_run(
    local_chain: LocalChain,
    fake_secrets: Secrets,
    services: tuple[FakeModelServer, FakePinningService],
    tmp_path: Path,
) -> None:
    model, pinning = services
    home = local_chain.home
    (home / "config.toml").write_text(
        f'[llm]\nprovider = "openai"\nmodel = "gpt-fake"\nbase_url = "{model.base_url}"\n\n'
        f'[ipfs]\n[[ipfs.pinning]]\nname = "fakepin"\nendpoint = "{pinning.url}"\ntoken_env = "{PINNING_TOKEN_ENV}"\n\n'
        '[disputer]\naccount = "dev:2"\nsamples = 1\nattempts = 1\nbackfill_s = 86400\nvote = false\n'
    )
    env = {
        **os.environ,
        "ATTEST_HOME": str(home),
        "ATTEST_PRIVATE_KEY": "0x" + bytes(fake_secrets.key.key).hex(),
        "OPENAI_API_KEY": fake_secrets.openai,
        "ANTHROPIC_API_KEY": fake_secrets.anthropic,
        PINNING_TOKEN_ENV: fake_secrets.pinning,
    }
    env.pop("OPENAI_BASE_URL", None)
    env.pop("ANTHROPIC_BASE_URL", None)
    run = Run(env)
    exported = tmp_path / "exported"
    exported.mkdir()

    run("kb", "add", str(KB))
    asked = run("ask", QUERY, "--provider", "openai", "--json")
    result = json.loads(asked.stdout)
    assert ENV_KEY_WARNING in asked.stderr
    assert result["answer"] == ANSWER and result["assertion_id"] is not None
    assertion_id, cid = result["assertion_id"], result["record_cid"]
    record = json.loads(LocalStore(home / "ipfs").get(CID.parse(cid)))
    assert record["asserter"] == fake_secrets.key.address  # asserted from the key in the environment
    # The secrets were really used: the model got the API key, the pinning service the token and the record's CID.
    assert model.requests[0].headers["authorization"] == f"Bearer {fake_secrets.openai}"
    assert cid in {pin.cid for pin in pinning.pins.values()}
    assert any(h.get("Authorization") == f"Bearer {fake_secrets.pinning}" for _, _, h in pinning.requests)

    verified = run("verify", assertion_id, "--json")
    assert json.loads(verified.stdout)["ok"] is True
    run("status", str(result["id"]))
    run("status", assertion_id, "--json")
    run("list")
    run("list", "--json")
    for fmt in ("jsonl", "csv"):
        run("export", "--format", fmt, "-o", str(exported / f"all.{fmt}"))
    run("config", "show")
    run("config", "show", "--json")
    run("ipfs", "pin", cid)

    # The model server refuses the key with a 401 whose body quotes the key in full.
    failed = run("ask", "What should the lens be polished with?", "--provider", "openai", ok=False)
    assert "rejected the API key (HTTP 401)" in failed.stderr and "OPENAI_API_KEY" in failed.stderr
    assert model.requests[1].headers["authorization"] == f"Bearer {fake_secrets.openai}"

    first = run("run", "--once", disputer=True)
    lines = [json.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "decided" and line["assertion"] == assertion_id for line in lines)
    run("run", "--once", disputer=True)  # nothing new: judges nothing, says nothing
    assert len(model.requests) == 3  # the one assertion judged once, on the first pass
    status = json.loads(run("status", "--json", disputer=True).stdout)
    assert status["decisions"]["none"] == 1 and status["decisions"]["dispute"] == 0
    scored = json.loads(run("score", assertion_id, "--json", disputer=True).stdout)
    assert scored["calibrated"] == pytest.approx(0.9)

    scanned: list[str] = []
    leaks = scan(fake_secrets.forms(), run.outputs, home, exported, scanned)
    assert leaks == []
    # What was searched: 17 commands' output, both exports, the ledger's and the disputer's SQLite tables (read
    # through SQLite as well as byte by byte), and the pinned record's block.
    assert len(run.outputs) == 17 and {Path(p).name for p in scanned} >= {"all.jsonl", "all.csv", "disputer.sqlite"}
    assert sum(":" in p and "disputer.sqlite" in p for p in scanned) > 5
    assert any(p.endswith(".data") and "/ipfs/blocks/" in p for p in scanned)
    # The scan itself must be able to fail: the secrets are found where they are supposed to be.
    assert len(scan(fake_secrets.forms(), [("env", json.dumps(env))], tmp_path / "none", tmp_path / "none")) == 5


def scan(
    forms: dict[str, bytes],
    outputs: list[tuple[str, str]],
    home: Path,
    exported: Path,
    scanned: list[str] | None = None,
) -> list[tuple[str, str]]:
    """(secret form, where) for every occurrence found; `scanned` collects every place searched."""
    found: list[tuple[str, str]] = []
    places = [] if scanned is None else scanned

    def check(where: str, data: bytes) -> None:
        places.append(where)
        found.extend((name, where) for name, form in forms.items() if form in data)

    for name, text in outputs:
        check(f"output of {name}", text.encode("utf-8"))
    for root in (home, exported):
        for path in files_under(root):
            data = path.read_bytes()
            check(str(path), data)
            if data.startswith(b"SQLite format 3\0"):
                for where, value in sqlite_values(path):
                    check(where, value)
    return found


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file, not following symlinks: ATTEST_HOME's `devnet` links to the session's shared node."""
    if not root.is_dir():
        return
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def sqlite_values(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every text and blob value of every table, read through SQLite (which sees what the WAL holds too)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # table names come from sqlite_master
                for value in row:
                    if isinstance(value, str):
                        yield f"{path}:{table}", value.encode("utf-8")
                    elif isinstance(value, bytes):
                        yield f"{path}:{table}", value
    finally:
        conn.close()
