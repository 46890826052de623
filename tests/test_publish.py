"""Everything a voter needs is public before the bond is at stake: `attest ask` publishes the record, the rules,
every cited document and the corpus manifest to every remote and confirms each before asserting, so `attest verify`
from another home that has only the remote passes. Off the devnet, no remote means no assertion: test_rehearsal.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from attest.cli import cli
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.support.ipfs_services import FakePinningService
from tests.support.jsipfs import JsIpfsDaemon

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

ATTEST = str(Path(sys.executable).with_name("attest"))
KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"
TOKEN = "psa-token-for-publish-tests"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path, config: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    monkeypatch.setenv("ATTEST_HOME", str(home))
    monkeypatch.delenv("ATTEST_CONFIG", raising=False)
    monkeypatch.delenv("ATTEST_IPFS_API", raising=False)


@pytest.fixture
def service() -> Iterator[FakePinningService]:
    with FakePinningService(TOKEN) as fake:
        yield fake


def test_verify_from_a_home_that_has_only_the_remote(
    local_chain: LocalChain, daemon: JsIpfsDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_only = f'[ipfs]\ntimeout_s = 20\nkubo_api = "{daemon.api}"\n'
    use_home(monkeypatch, local_chain.home, remote_only)
    ok("kb", "add", str(KB_DOCS))
    out = json.loads(ok("ask", QUESTION, "--json"))
    assertion_id = str(out["assertion_id"])
    with Ledger() as ledger:
        pins = ledger.find(assertion_id).pins
    published = {p["cid"] for p in pins if p["store"].startswith("kubo") and p["status"] == "pinned"}
    assert len(published) >= 4  # record, rules, at least one cited document, the corpus manifest

    # Home B: the same chain, the same remote, nothing of A's blockstore or knowledge base.
    other = tmp_path / "home-b"
    use_home(monkeypatch, other, remote_only)
    (other / "devnet").symlink_to(local_chain.home / "devnet", target_is_directory=True)
    assert not (other / "ipfs").exists()
    result = run("verify", assertion_id)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line.split()[0] for line in result.output.splitlines()[:-1]}
    assert lines["context"] == "PASS" and lines["corpus"] == "PASS", result.output
    assert "all checks passed" in result.output


def test_a_remote_that_has_not_confirmed_holds_the_assertion_back(
    local_chain: LocalChain, service: FakePinningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISH_PSA_TOKEN", TOKEN)
    config = f'[ipfs]\ntimeout_s = 1.5\n\n[[ipfs.pinning]]\nname = "fake"\nendpoint = "{service.url}"\n'
    use_home(monkeypatch, local_chain.home, config + 'token_env = "PUBLISH_PSA_TOKEN"\n')
    ok("kb", "add", str(KB_DOCS))
    service.knobs.steps_to_pinned = 10**6  # the service accepts every pin and never finishes one
    block = local_chain.w3.eth.block_number
    result = subprocess.run(
        [ATTEST, "ask", QUESTION], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: not public yet: the record ") and "attest resume" in error, result.stderr
    assert "still pinning" in error or "still queued" in error
    assert local_chain.w3.eth.block_number == block  # nothing sent: no approval, no assertion
    with Ledger() as ledger:
        (pending,) = ledger.unfinished()
        assert pending.status == "signed" and pending.assertion_id is None
    cids = {pin.cid for pin in service.pins.values()}
    assert len(cids) >= 4  # asked for the record, the rules, the cited documents and the manifest

    service.knobs.steps_to_pinned = 1  # the service finishes: resume publishes, confirms, then asserts
    assert "asserted" in ok("resume")
    with Ledger() as ledger:
        done = ledger.get(pending.id)
    assert done.status == "asserted" and done.assertion_id is not None
