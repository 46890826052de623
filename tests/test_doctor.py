"""`attest doctor` and the disputer's start-up checks, through the console scripts, on a rehearsed public network
(an anvil serving sepolia's chain id with the UMA stack and our registry) and on the devnet: every check passes on
a healthy setup, and each broken one fails with its own line naming the fix, exit 1, nothing sent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from attest.accounts import dev_account
from attest.chain.registry import deploy_call
from attest.chain.tx import Sender
from attest.devnet import Deployment, deploy_stack
from tests.conftest import LocalChain
from tests.support.dvm import throwaway_anvil
from tests.support.ipfs_services import FakePinningService
from tests.support.ports import free_port
from tests.test_registry_deploy import DEPLOYER, SEPOLIA, Home

DISPUTER = str(Path(sys.executable).with_name("disputer"))
TOKEN = "pin-token-for-doctor"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Web3, Deployment, str]]:
    """The rehearsal chain with the UMA stack and an AttestationRegistry (minimum liveness 900 s) for its OOv3."""
    with throwaway_anvil(chain_id=SEPOLIA) as w3:
        sender = Sender(w3, dev_account(0))
        deployment = deploy_stack(sender, mint_to=(DEPLOYER.address,))
        receipt = sender.transact(deploy_call(w3, deployment.oov3, 900), "deploy AttestationRegistry")
        yield w3, deployment, str(receipt["contractAddress"])


@pytest.fixture
def pinning() -> Iterator[FakePinningService]:
    with FakePinningService(TOKEN) as service:
        yield service


class Setup:
    """A home whose sepolia is the rehearsal chain, with a pinning service and a disputer account."""

    def __init__(self, home: Home, stack: tuple[Web3, Deployment, str], pinning: FakePinningService) -> None:
        self.home, self.w3 = home, stack[0]
        self.oov3, self.registry, self.currency = stack[1].oov3, stack[2], stack[1].currency
        self.url = home.w3.provider.endpoint_uri  # type: ignore[attr-defined]
        self.pinning = pinning.url
        home.env["DOCTOR_PIN_TOKEN"] = TOKEN
        empty = Account.encrypt(Account.create().key, "pw", kdf="pbkdf2", iterations=2)
        (home.root / "ape" / "accounts" / "empty.json").write_text(json.dumps(empty))
        self.write()

    def write(self, *, oov3: str | None = None, registry: str | None = "", ipfs: str = "", disputer: str = "") -> None:
        registry = self.registry if registry == "" else registry
        self.home.config.write_text(
            '[defaults]\naccount = "deployer"\n\n'
            f'[networks.sepolia]\nrpc_url = "{self.url}"\noov3 = "{oov3 or self.oov3}"\n'
            + (f'registry = "{registry}"\n' if registry else "")
            + f'\n[networks.amoy]\nrpc_url = "{self.url}"\n'
            + (
                ipfs
                or f'\n[[ipfs.pinning]]\nname = "fake"\nendpoint = "{self.pinning}"\ntoken_env = "DOCTOR_PIN_TOKEN"\n'
            )
            + f'\n[disputer]\naccount = "deployer"\nvote = false\nsettle = false\n{disputer}'
        )

    def doctor(self, *args: str) -> tuple[int, dict[str, list[str]]]:
        """rc and {check name: its lines}; nothing is ever sent."""
        nonce = self.w3.eth.get_transaction_count(DEPLOYER.address)
        result = self.home.run("doctor", "--network", "sepolia", *args)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        assert self.w3.eth.get_transaction_count(DEPLOYER.address) == nonce
        lines: dict[str, list[str]] = {}
        for line in result.stdout.splitlines()[:-1]:
            found = re.fullmatch(r"(PASS|WARN|FAIL)  (\S+(?: \S+)*?) {2,}(.*)", line)
            assert found is not None, line
            status, name, detail = found.groups()
            lines.setdefault(name, []).append(f"{status} {detail}")
        return result.returncode, lines

    def disputer_once(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DISPUTER, "run", "--once", "--network", "sepolia"], env=self.home.env, capture_output=True, text=True,
            timeout=180, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, stack: tuple[Web3, Deployment, str], pinning: FakePinningService) -> Setup:
    return Setup(Home(tmp_path, stack[0], stack[1].oov3), stack, pinning)


def statuses(lines: dict[str, list[str]]) -> dict[str, set[str]]:
    return {name: {line.split()[0] for line in found} for name, found in lines.items()}


def test_a_healthy_rehearsal_passes_every_check_and_the_disputer_starts(setup: Setup) -> None:
    rc, lines = setup.doctor()
    assert rc == 0, lines
    assert statuses(lines) == {
        name: {"PASS"}
        for name in ("rpc", "oov3", "identifier", "currency", "uma params", "registry", "account", "gas", "bond",
                     "ipfs", "llm", "disputer gas", "disputer")
    }, lines  # fmt: skip
    assert f"sepolia serves chain {SEPOLIA}" in lines["rpc"][0]
    assert "minimum liveness 900 s; asks use 7200 s" in lines["registry"][0]
    assert "6 decimals" in lines["currency"][0] or "18 decimals" in lines["currency"][0]
    assert "10 attestations may cost" in lines["gas"][0] and " gwei)" in lines["gas"][0]
    assert "pinning service fake accepts the token in DOCTOR_PIN_TOKEN" in lines["ipfs"][0]
    as_json = json.loads(setup.home.ok("doctor", "--network", "sepolia", "--json", "--attestations", "3"))
    assert as_json["ok"] is True and {c["status"] for c in as_json["checks"]} == {"pass"}
    assert TOKEN not in json.dumps(as_json)
    started = setup.disputer_once()
    assert started.returncode == 0, started.stderr[-2000:]


def test_each_broken_setup_fails_with_its_line(setup: Setup) -> None:
    # An RPC that serves another chain: amoy is 80002.
    rc, lines = setup.doctor("--network", "amoy")  # the last --network wins
    assert rc == 1 and lines["rpc"] == [
        f"FAIL the RPC endpoint for amoy serves chain {SEPOLIA}, not 80002; fix the URL"
    ]
    # An OOv3 address without code: the chain checks that need it are left out, its line names the setting.
    setup.write(oov3=dev_account(7).address)
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["oov3"] == {"FAIL"}
    assert f"no contract at the OOv3 address {dev_account(7).address}" in lines["oov3"][0]
    assert "point [networks.sepolia] oov3" in lines["oov3"][0]
    assert "registry" not in lines and "gas" not in lines
    # A contract that is not OOv3 (the bond token) at the OOv3 address.
    setup.write(oov3=setup.currency)
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["oov3"] == {"FAIL"}
    assert "does not answer as UMA's OptimisticOracleV3" in lines["oov3"][0] and "registry" not in lines
    # No registry configured.
    setup.write(registry=None)
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["registry"] == {"FAIL"}
    assert "attest registry deploy --network sepolia" in lines["registry"][0]
    assert statuses(lines)["gas"] == {"PASS"}  # the rest is still checked
    # An account without gas money or bond tokens.
    setup.write()
    rc, lines = setup.doctor("--account", "empty")
    assert rc == 1 and statuses(lines)["gas"] == {"FAIL"} and statuses(lines)["bond"] == {"FAIL"}
    assert "holds 0 ETH" in lines["gas"][0] and "; send " in lines["gas"][0]
    assert "; send at least " in lines["bond"][0]
    # An IPFS remote that is down, and a pinning token the service refuses.
    down = f'\n[ipfs]\nkubo_api = "/ip4/127.0.0.1/tcp/{free_port()}/http"\n'
    setup.write(ipfs=down)
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["ipfs"] == {"FAIL"} and "Kubo API /ip4/127.0.0.1/tcp/" in lines["ipfs"][0]
    setup.home.env["DOCTOR_PIN_TOKEN"] = "a-wrong-token"
    setup.write()
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["ipfs"] == {"FAIL"} and "pinning service fake" in lines["ipfs"][0]
    assert "a-wrong-token" not in "".join(lines["ipfs"])
    # No remote at all, off the devnet: voters could not read the records.
    setup.write(ipfs="\n")
    rc, lines = setup.doctor()
    assert rc == 1 and "no IPFS remote for sepolia" in lines["ipfs"][0] and "[ipfs] kubo_api" in lines["ipfs"][0]
    # A disputer whose per-dispute limit is below the minimum bond could never dispute.
    setup.home.env["DOCTOR_PIN_TOKEN"] = TOKEN
    setup.write(disputer='max_bond_per_dispute = "1"\n')
    rc, lines = setup.doctor()
    assert rc == 1 and statuses(lines)["disputer"] == {"FAIL"} and "it could never dispute" in lines["disputer"][0]
    # A model provider whose key is not set.
    pinned = f'[[ipfs.pinning]]\nname = "fake"\nendpoint = "{setup.pinning}"\ntoken_env = "DOCTOR_PIN_TOKEN"\n'
    setup.write(ipfs=f'\n[llm]\nprovider = "anthropic"\n\n{pinned}')
    rc, lines = setup.doctor()
    assert rc == 1 and lines["llm"] == ["FAIL [llm] provider anthropic needs a key in ANTHROPIC_API_KEY, which is "
                                        "not set; export ANTHROPIC_API_KEY"]  # fmt: skip


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("Error: the disputer cannot start on sepolia: "), result.stderr
    return lines[0]


def test_the_disputer_refuses_to_start_without_the_contracts_or_the_money(setup: Setup) -> None:
    setup.write(oov3=dev_account(7).address)
    line = refused(setup.disputer_once())
    assert f"oov3: there is no contract at the OOv3 address {dev_account(7).address}" in line
    setup.write(oov3=setup.currency)
    assert "does not answer as UMA's OptimisticOracleV3" in refused(setup.disputer_once())
    setup.write(registry=dev_account(8).address)
    line = refused(setup.disputer_once())
    assert f"registry: there is no contract at the registry address {dev_account(8).address}" in line
    setup.write()
    setup.home.config.write_text(
        setup.home.config.read_text().replace('account = "deployer"\nvote', 'account = "empty"\nvote')
    )
    line = refused(setup.disputer_once())
    assert "registry" not in line and "oov3" not in line
    assert "gas: " in line and "holds 0 ETH" in line and "bond: " in line and "send at least" in line
    # A dry run sends nothing, so it needs no money.
    dry = subprocess.run(
        [DISPUTER, "run", "--once", "--network", "sepolia", "--dry-run"], env=setup.home.env, capture_output=True,
        text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]


def test_doctor_passes_on_the_devnet(local_chain: LocalChain) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("attest")), "doctor"], capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "ready"
    assert all(line.startswith("PASS") for line in result.stdout.splitlines()[:-1]), result.stdout
