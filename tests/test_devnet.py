"""`attest devnet` through the installed console script, against real anvil processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.tx import Sender
from attest.paths import anvil_executable
from tests.support.oov3 import assert_truth
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ATTEST = str(Path(sys.executable).with_name("attest"))


class Cli:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.env = {**os.environ, "ATTEST_HOME": str(home)}

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ATTEST, *args], env=env or self.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def up(self) -> str:
        return self.ok("devnet", "up", "--port", str(self.port))

    def status(self) -> dict:
        return json.loads(self.ok("devnet", "status", "--json"))

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """An expected failure: exit 1, one line on stderr, no traceback."""
        result = self.run(*args, env=env)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        return lines[0]

    def files(self) -> set[str]:
        devnet = self.home / "devnet"
        return {p.name for p in devnet.iterdir()} - {".lock", "anvil.log"} if devnet.exists() else set()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "home", free_port())
    yield c
    c.run("devnet", "down")


def test_up_restart_finds_the_same_deployment_assertions_and_later_time(cli: Cli) -> None:
    assert "devnet started" in cli.up()
    first = cli.status()
    deployment = first["deployment"]
    assert first["running"] and deployment["chain_id"] == 31337

    # Leave a mark on the chain: a bonded assertion from dev account 1, then skip a day of liveness.
    w3 = Web3(Web3.HTTPProvider(first["rpc_url"]))
    asserter = Sender(w3, dev_account(1))
    oov3 = OptimisticOracleV3(w3, deployment["oov3"])
    bond = oov3.minimum_bond(deployment["currency"])
    currency = w3.eth.contract(address=deployment["currency"], abi=uma("TestnetERC20").abi)
    asserter.transact(currency.functions.approve(oov3.address, bond), "approve")
    made, _ = assert_truth(
        oov3,
        asserter,
        claim=b"devnet restart test",
        asserter=asserter.address,
        callback_recipient=deployment["registry"],
        liveness=3600,
        currency=deployment["currency"],
        bond=bond,
        identifier="ASSERT_TRUTH2",
        domain_id=b"\x01" * 32,
    )
    w3.provider.make_request("evm_increaseTime", [86400])
    w3.provider.make_request("evm_mine", [])
    before = w3.eth.get_block("latest")

    assert "already running" in cli.up()
    assert "stopped" in cli.ok("devnet", "down")
    stopped = cli.status()
    assert not stopped["running"] and stopped["deployment"] == deployment
    assert "not running" in cli.ok("devnet", "status")

    assert "devnet started" in cli.up()
    again = cli.status()
    assert again["deployment"] == deployment
    assert again["block_number"] == before["number"]
    w3 = Web3(Web3.HTTPProvider(again["rpc_url"]))
    assertion = OptimisticOracleV3(w3, deployment["oov3"]).get_assertion(made.assertion_id)
    assert assertion.asserter == asserter.address and assertion.bond == bond
    w3.provider.make_request("evm_mine", [])
    assert w3.eth.get_block("latest")["timestamp"] > before["timestamp"]  # time kept moving forward

    assert "stopped" in cli.ok("devnet", "down")
    assert "was not running" in cli.ok("devnet", "down")


def test_status_prints_addresses_block_and_time(cli: Cli) -> None:
    assert "not deployed yet" in cli.ok("devnet", "status")
    cli.up()
    text = cli.ok("devnet", "status")
    deployment = cli.status()["deployment"]
    for label in ("OptimisticOracleV3", "AttestationRegistry", "MockOracleAncillary", "block:", "chain time:"):
        assert label in text
    assert deployment["registry"] in text and f"127.0.0.1:{cli.port}" in text


def test_a_crashed_node_is_detected_and_restarted_on_the_same_chain(cli: Cli) -> None:
    cli.up()
    status = cli.status()
    os.kill(status["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cli.status()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cli.status()["running"]
    cli.up()
    assert cli.status()["deployment"] == status["deployment"]


def test_ctrl_c_during_first_deployment_leaves_nothing_behind(cli: Cli) -> None:
    for _attempt in range(5):
        proc = subprocess.Popen(
            [ATTEST, "devnet", "up", "--port", str(cli.port)],
            env=cli.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        node_file = cli.home / "devnet" / "node.json"
        deadline = time.monotonic() + 30
        while not node_file.exists() and time.monotonic() < deadline:  # anvil is up; deployment is under way
            time.sleep(0.005)
        anvil_pid = json.loads(node_file.read_text())["pid"]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        if proc.returncode != 0:
            break
        # The deployment finished before the signal landed (a busy machine): start over from nothing.
        cli.ok("devnet", "reset", "--yes")
    assert proc.returncode == 130 and "Interrupted" in stderr and "Traceback" not in stderr
    assert cli.files() == set()
    with pytest.raises(ProcessLookupError):
        os.kill(anvil_pid, 0)
    cli.up()  # and the next start is a clean first start
    assert cli.status()["deployment"] is not None


def test_missing_npm_toolchain_is_one_clear_error(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "no-node-modules"
    empty.mkdir()
    line = cli.fails("devnet", "up", "--port", str(cli.port), env={**cli.env, "ATTEST_TOOLCHAIN_DIR": str(empty)})
    assert "make install" in line and "npm ci" in line
    assert cli.files() == set()


def test_a_port_held_by_another_program_is_refused(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", cli.port))
        busy.listen()
        line = cli.fails("devnet", "up", "--port", str(cli.port))
    assert f"port {cli.port}" in line and "not our devnet" in line and "--port" in line
    assert cli.files() == set()


def test_a_foreign_ethereum_node_on_the_port_is_named(cli: Cli) -> None:
    foreign = subprocess.Popen(
        [str(anvil_executable()), "--port", str(cli.port), "--chain-id", "1", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{cli.port}"))
        deadline = time.monotonic() + 10
        while not w3.is_connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        line = cli.fails("devnet", "up", "--port", str(cli.port))
    finally:
        foreign.terminate()
        foreign.wait(10)
    assert "another Ethereum node" in line and "chain id 1)" in line
    assert cli.files() == set()


def test_a_corrupt_state_file_is_refused_and_reset_recovers(cli: Cli) -> None:
    cli.up()
    old = cli.status()["deployment"]
    cli.ok("devnet", "down")
    state = cli.home / "devnet" / "state.json"
    state.write_text(state.read_text()[:1000])  # truncated, as after a crash mid-write
    line = cli.fails("devnet", "up", "--port", str(cli.port))
    assert "corrupt" in line and "attest devnet reset" in line
    assert not cli.status()["running"]

    assert "reset" in cli.ok("devnet", "reset", "--yes")
    assert cli.files() == set()
    cli.up()
    assert cli.status()["deployment"]["genesis_hash"] != old["genesis_hash"]


def test_a_corrupt_deployment_file_is_refused(cli: Cli) -> None:
    cli.up()
    cli.ok("devnet", "down")
    (cli.home / "devnet" / "deployment.json").write_text("{not json")
    line = cli.fails("devnet", "up", "--port", str(cli.port))
    assert "deployment.json is corrupt" in line and "attest devnet reset" in line


def test_a_deployment_without_its_chain_is_refused(cli: Cli) -> None:
    cli.up()
    cli.ok("devnet", "down")
    (cli.home / "devnet" / "state.json").unlink()
    line = cli.fails("devnet", "up", "--port", str(cli.port))
    assert "chain state" in line and "attest devnet reset" in line


def test_reset_asks_before_deleting(cli: Cli) -> None:
    cli.up()
    result = cli.run("devnet", "reset")  # no stdin: the confirmation is refused
    assert result.returncode == 1 and "Aborted" in result.stderr
    assert cli.status()["running"]


def test_networks_lookup_by_name_and_chain_id(cli: Cli) -> None:
    assert "testnet.oracle.uma.xyz" in cli.ok("networks", "show", "sepolia")
    assert "0xFd9e2642a170aDD10F53Ee14a93FcF2F31924944" in cli.ok("networks", "show", "11155111")
    assert "does not list base-sepolia" in cli.ok("networks", "show", "84532")
    line = cli.fails("networks", "show", "424242")
    assert "chain id 424242 is not in the network registry" in line and "sepolia (11155111)" in line
    listing = cli.ok("networks")
    assert all(name in listing for name in ("local", "ethereum", "polygon", "base", "arbitrum", "optimism"))


def test_disputer_entry_point_installed() -> None:
    disputer = shutil.which("disputer", path=str(Path(sys.executable).parent))
    assert disputer is not None
    result = subprocess.run([disputer, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "disputer" in result.stdout
