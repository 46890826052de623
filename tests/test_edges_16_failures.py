"""Issue 16, item 5: every expected failure is one line (exit code not 0, no traceback, nothing written), and a
read-only home stays readable. Each command runs as a person runs it: the CLI in its own process."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.support.ports import free_port

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"  # the fixture KB answers it, so ask would assert
DISPUTER = Path(sys.executable).parent / "disputer"


def cli(
    *args: str,
    home: Path | str,
    tool: str = "attest",
    stdin: str | None = None,
    read_only: bool = False,
    cwd: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attest", *args] if tool == "attest" else [str(DISPUTER), *args]
    if read_only and os.geteuid() == 0:
        # root writes through any mode bits; without CAP_DAC_OVERRIDE it meets them like anyone else.
        command = ["setpriv", "--bounding-set", "-dac_override,-fowner", *command]
    return subprocess.run(
        command,
        env={**os.environ, "ATTEST_HOME": str(home), **env},
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def ledger_rows(home: Path) -> int:
    if not (home / "ledger.sqlite").exists():
        return 0
    with Ledger(home / "ledger.sqlite") as ledger:
        return len(ledger.select())


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    assert cli("kb", "add", str(KB_DOCS), home=local_chain.home).returncode == 0
    return local_chain


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--liveness", "99999999999999999999999"), ("--liveness",)),
        (("--currency", "0x0000000000000000000000000000000000000001"), ("no token contract", "--currency")),
        (("--currency", "nothex"), ("'nothex' is not an address",)),
    ],
    ids=["liveness-overflow", "currency-no-contract", "currency-not-hex"],
)
def test_bad_ask_option_is_one_line_and_writes_nothing(
    chain: LocalChain, flags: tuple[str, ...], words: tuple[str, ...]
) -> None:
    block = chain.w3.eth.block_number
    error = one_line_failure(cli("ask", QUESTION, *flags, home=chain.home), *words)
    assert "config" not in error
    assert ledger_rows(chain.home) == 0 and chain.w3.eth.block_number == block


def test_disputer_metrics_port_busy_is_one_line(local_chain: LocalChain) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = cli("run", "--once", "--metrics-port", str(port), home=local_chain.home, tool="disputer")
    one_line_failure(result, f"127.0.0.1:{port}", "--metrics-port")


def test_accounts_import_reads_a_piped_key_without_warning(tmp_path: Path) -> None:
    key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil's dev account 1
    ape = {"APE_DATA_FOLDER": str(tmp_path / "ape")}
    refused = cli("accounts", "import", "bob", home=tmp_path, stdin=key + "\n", ATTEST_PASSPHRASE="", **ape)
    one_line_failure(refused, "ATTEST_PASSPHRASE")
    assert not (tmp_path / "ape" / "accounts" / "bob.json").exists()
    made = cli("accounts", "import", "bob", home=tmp_path, stdin=key + "\n", ATTEST_PASSPHRASE="pw", **ape)
    assert made.returncode == 0, made.stderr
    assert made.stderr == "" and "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" in made.stdout
    assert key[2:] not in made.stdout + made.stderr
    both = cli("accounts", "import", "carol", home=tmp_path, stdin=f"{key}\npass word\npass word\n", **ape)
    assert both.returncode == 0 and both.stderr == "", both.stderr
    assert "pass word" not in both.stdout and key[2:] not in both.stdout


@pytest.fixture
def read_only_home(tmp_path: Path) -> Path:
    """An auditor's copy of a home with one attestation and a knowledge base, every file and folder read-only."""
    home = tmp_path / "home"
    home.mkdir()
    assert cli("kb", "add", str(KB_DOCS), home=home).returncode == 0
    asked = cli("ask", QUESTION, "--no-assert", home=home)
    assert asked.returncode == 0, asked.stderr
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return copy


def test_a_read_only_home_stays_readable(read_only_home: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in read_only_home.rglob("*")}
    listed = cli("list", home=read_only_home, read_only=True)
    assert listed.returncode == 0 and QUESTION in listed.stdout, listed.stderr
    status = cli("status", "1", home=read_only_home, read_only=True)
    assert status.returncode == 0 and "pinned" in status.stdout, status.stderr
    exported = cli("export", home=read_only_home, read_only=True)
    assert exported.returncode == 0 and QUESTION in exported.stdout, exported.stderr
    found = cli("kb", "search", "wick", home=read_only_home, read_only=True)
    assert found.returncode == 0 and "guide.md" in found.stdout, found.stderr
    # A write on it is refused in one line, and nothing changed.
    one_line_failure(cli("kb", "remove", "good/guide.md", home=read_only_home, read_only=True), "read-only")
    assert {p: p.stat().st_mtime_ns for p in read_only_home.rglob("*")} == before


@pytest.mark.parametrize(
    "command",
    [("ask", QUESTION), ("ask", QUESTION, "--no-assert"), ("devnet", "up", "--port", "0"), ("run", "--once")],
    ids=["ask", "ask-no-assert", "devnet-up", "disputer-run"],
)
def test_writing_commands_refuse_a_read_only_home(read_only_home: Path, command: tuple[str, ...]) -> None:
    before = {p: p.stat().st_mtime_ns for p in read_only_home.rglob("*")}
    tool = "disputer" if command[0] == "run" else "attest"
    if command[:2] == ("devnet", "up"):
        command = ("devnet", "up", "--port", str(free_port()))
    result = cli(*command, home=read_only_home, tool=tool, read_only=True)
    one_line_failure(result, "not writable", "ATTEST_HOME")
    assert {p: p.stat().st_mtime_ns for p in read_only_home.rglob("*")} == before
