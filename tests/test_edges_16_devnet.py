"""Issue 16, item 6: the small things that need a chain: messages of `ask` and the disputer, the devnet's port and
clock. On the session's devnet (reverted after each test), except the port test, which starts its own."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from attest.cli import cli as attest_cli
from attest.devnet import Devnet
from attest.errors import DevnetError, RpcUnavailable
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.networks import DEVNET_PORT
from disputer.watcher import ScanResult
from tests.conftest import LocalChain
from tests.support.ports import free_port
from tests.test_disputer_daemon import HONEST, Env, honest_env, kb_home  # noqa: F401 (fixtures)
from tests.test_edges_16_failures import KB_DOCS, QUESTION, cli, one_line_failure


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    assert cli("kb", "add", str(KB_DOCS), home=local_chain.home).returncode == 0
    return local_chain


def test_an_unsupported_identifier_names_the_supported_one(chain: LocalChain) -> None:
    one_line_failure(cli("ask", QUESTION, "--identifier", "FOO", home=chain.home), "FOO", "ASSERT_TRUTH2")


def test_a_poor_account_at_the_minimum_bond_is_not_told_to_lower_it(chain: LocalChain) -> None:
    poor = Account.create()
    asked = cli("ask", QUESTION, home=chain.home, ATTEST_PRIVATE_KEY=poor.key.hex())
    error = one_line_failure(asked, "holds 0 USDC", "bond is 200 USDC", "fund the account")
    assert "lower --bond" not in error
    above = one_line_failure(cli("ask", QUESTION, "--bond", "300", home=chain.home, ATTEST_PRIVATE_KEY=poor.key.hex()))
    assert "lower --bond (the minimum is 200 USDC)" in above


def test_standing_allowance_progress_says_unlimited(chain: LocalChain) -> None:
    (chain.home / "config.toml").write_text("[networks.local]\nstanding_allowance = true\n")
    asked = cli("ask", QUESTION, home=chain.home)
    assert asked.returncode == 0, asked.stderr
    [line] = [line for line in asked.stderr.splitlines() if "approve" in line]
    assert "any amount of USDC (standing_allowance)" in line, line


def test_devnet_advance_moves_the_chain_clock(chain: LocalChain) -> None:
    before = chain.now()
    result = CliRunner().invoke(attest_cli, ["devnet", "advance", "2h"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert chain.now() >= before + 7200
    for bad in ("2x", "0", "h"):
        refused = CliRunner().invoke(attest_cli, ["devnet", "advance", bad])
        assert refused.exit_code == 1 and "duration" in str(refused.exception)


def test_an_on_demand_devnet_uses_the_port_of_the_last_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("kb", "add", str(KB_DOCS), home=home).returncode == 0
    port = free_port()
    try:
        assert cli("devnet", "up", "--port", str(port), home=home).returncode == 0
        assert cli("devnet", "down", home=home).returncode == 0
        asked = cli("ask", QUESTION, home=home)  # starts the devnet on demand
        assert asked.returncode == 0, asked.stderr
        assert f"started the local devnet at http://127.0.0.1:{port}" in asked.stderr
    finally:
        cli("devnet", "down", home=home)


def test_the_port_setting_comes_before_the_last_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devnet = Devnet(tmp_path)
    assert devnet.default_port() == DEVNET_PORT
    devnet.dir.mkdir()
    devnet.port_file.write_text("18999")
    assert devnet.default_port() == 18999
    monkeypatch.setenv("ATTEST_DEVNET_PORT", "19001")
    assert devnet.default_port() == 19001
    monkeypatch.setenv("ATTEST_DEVNET_PORT", "http://x")
    with pytest.raises(DevnetError, match="ATTEST_DEVNET_PORT='http://x' is not a port"):
        devnet.default_port()


def test_an_unfetchable_record_alerts_once_and_keeps_being_fetched(
    honest_env: Env,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = honest_env.attest(HONEST)
    from attest.claim import parse_claim

    record = CID.parse(parse_claim(made.claim).record_cid)
    store = LocalStore()
    store._path(record).unlink()
    with honest_env.store() as db, caplog.at_level(logging.INFO, logger="disputer"):
        daemon = honest_env.daemon(db, attempts=2)
        for _ in range(4):
            report = asyncio.run(daemon.step())
            assert report.retried == [made.assertion_id]
        assert daemon.metrics.value("alerts_total", {"reason": "record_unavailable"}) == 1
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "record_unavailable"]
    assert len(alerts) == 1 and alerts[0].levelno == logging.WARNING
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records if getattr(r, "action", None) == "retry"]
    assert len(reasons) == 4 and all("record unavailable" in r and " of 2" not in r for r in reasons), reasons
    assert "fetched 4 time(s)" in reasons[-1]


def test_the_daemon_logs_an_rpc_outage_for_its_operator(honest_env: Env) -> None:  # noqa: F811
    with honest_env.store() as db:
        daemon = honest_env.daemon(db)

        def down() -> ScanResult:
            raise RpcUnavailable("the RPC at http://127.0.0.1:1 did not answer eth_getLogs after 6 tries (timeout)")

        daemon.watcher.poll = down  # type: ignore[method-assign]
        report = asyncio.run(daemon.step())
    [error] = report.errors
    assert "attest resume" not in error and "the next poll tries again" in error
    assert "attest resume" in str(RpcUnavailable("down"))  # what `attest`'s own user is told
