"""A public network rehearsed on anvil: an anvil with sepolia's chain id, the UMA stack deployed on it, `sepolia`
pointed at it by config overrides; then `attest registry deploy` and `attest ask`, through the console script.
And the config file edit `--save` makes, on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from attest.accounts import dev_account
from attest.chain.registry import read_registry
from attest.chain.tx import Sender
from attest.config import load_config, save_network_key
from attest.devnet import Deployment, deploy_stack
from attest.errors import ConfigError
from attest.ledger import DeployLog, Ledger
from tests.support.dvm import throwaway_anvil

ATTEST = str(Path(sys.executable).with_name("attest"))
KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
SEPOLIA = 11155111
DEPLOYER = dev_account(0)  # the keystore account "deployer": pays the deploy and asks


@pytest.fixture(scope="module")
def rehearsal() -> Iterator[tuple[Web3, Deployment]]:
    """An anvil serving chain 11155111 with the UMA stack (Finder, whitelists, Store, mock oracle, USDC, OOv3)."""
    with throwaway_anvil(chain_id=SEPOLIA) as w3:
        yield w3, deploy_stack(Sender(w3, dev_account(0)), mint_to=(DEPLOYER.address,))


class Home:
    """An ATTEST_HOME whose config points sepolia at the rehearsal chain, with a keystore account."""

    def __init__(self, root: Path, w3: Web3, oov3: str) -> None:
        self.root, self.w3 = root, w3
        self.config = root / "home" / "config.toml"
        self.config.parent.mkdir(parents=True)
        keystores = root / "ape" / "accounts"
        keystores.mkdir(parents=True)
        keystore = Account.encrypt(DEPLOYER.key, "pw", kdf="pbkdf2", iterations=2)
        (keystores / "deployer.json").write_text(json.dumps(keystore))
        url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
        self.config.write_text(
            "# my settings\n"
            '[defaults]\naccount = "deployer"\n\n'
            f'[networks.sepolia]  # the rehearsal\nrpc_url = "{url}"\noov3 = "{oov3}"\n# keep this comment\n'
            f'\n[networks.amoy]\nrpc_url = "{url}"\n'  # an RPC of another chain: amoy is 80002
        )
        self.env = {
            **os.environ,
            "ATTEST_HOME": str(root / "home"),
            "APE_DATA_FOLDER": str(root / "ape"),
            "ATTEST_PASSPHRASE": "pw",
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ATTEST, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (result.stdout, result.stderr)
        return result.stdout

    def refused(self, *args: str) -> str:
        """One line on stderr, exit 1, no traceback, and nothing sent from the deployer."""
        nonce = self.w3.eth.get_transaction_count(DEPLOYER.address)
        result = self.run(*args)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert self.w3.eth.get_transaction_count(DEPLOYER.address) == nonce
        return lines[0]


@pytest.fixture
def home(tmp_path: Path, rehearsal: tuple[Web3, Deployment]) -> Home:
    w3, stack = rehearsal
    return Home(tmp_path, w3, stack.oov3)


def deploy_lines(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def test_deploy_save_then_ask_on_the_rehearsed_sepolia(home: Home, rehearsal: tuple[Web3, Deployment]) -> None:
    w3, stack = rehearsal
    before = home.config.read_text()
    assert "none configured; deploy one: attest registry deploy --network sepolia" in home.ok(
        "networks", "show", "sepolia"
    )
    nonce = w3.eth.get_transaction_count(DEPLOYER.address)
    out = home.ok("registry", "deploy", "--network", "sepolia", "--yes", "--save")
    shown = deploy_lines(out)
    assert shown["network"] == f"sepolia (chain {SEPOLIA})" and shown["OOv3"] == stack.oov3
    assert shown["min liveness"] == "900 s"  # the testnet default
    assert shown["cost"].startswith("at most ") and " ETH (" in shown["cost"] and " gwei; balance " in shown["cost"]
    address = shown["registry"].split()[0]
    assert w3.eth.get_transaction_count(DEPLOYER.address) == nonce + 1  # one transaction: the deploy
    info = read_registry(w3, address)
    assert (info.oracle, info.min_liveness) == (stack.oov3, 900)
    # The file keeps every line and comment; the registry line sits under the sepolia header.
    after = home.config.read_text()
    assert after == before.replace("# the rehearsal\n", f'# the rehearsal\nregistry = "{address}"\n')
    assert f"registry:    {address}" in home.ok("networks", "show", "sepolia")

    # A liveness the registry would resolve Rejected is refused before anything is written or sent.
    assert home.ok("kb", "add", str(KB_DOCS))
    line = home.refused("ask", "How often should the wick be trimmed?", "--network", "sepolia", "--liveness", "899")
    assert "minimum of 900 s" in line and "--liveness 900" in line
    with Ledger(home.root / "home" / "ledger.sqlite") as ledger:
        assert ledger.select() == []

    asked = json.loads(
        home.ok("ask", "How often should the wick be trimmed?", "--network", "sepolia", "--provider", "extractive",
                "--json", "--publish-elsewhere")
    )  # fmt: skip
    assert asked["network"] == "sepolia" and asked["assertion_id"]
    assert str(asked["oracle_ui"]).startswith("https://testnet.oracle.uma.xyz/?transactionHash=")
    assert f"&chainId={SEPOLIA}&" in str(asked["oracle_ui"])

    # Deploying twice is refused in one line, nothing sent; with --save even --force is (the line is not rewritten).
    assert "already has an AttestationRegistry at" in home.refused("registry", "deploy", "--network", "sepolia")
    assert "already sets [networks.sepolia] registry" in home.refused(
        "registry", "deploy", "--network", "sepolia", "--force", "--save", "--yes"
    )


def test_a_deploy_interrupted_after_signing_is_finished_by_running_it_again(home: Home) -> None:
    nonce = home.w3.eth.get_transaction_count(DEPLOYER.address)
    crashed = home.run("registry", "deploy", "--network", "sepolia", "--yes", ATTEST_CRASH_AT="deploy-registry-signed")
    assert crashed.returncode == 137
    assert home.w3.eth.get_transaction_count(DEPLOYER.address) == nonce  # signed and kept, never sent
    out = home.ok("registry", "deploy", "--network", "sepolia")  # no prompt: nothing new is signed
    assert "resuming:" in out and "nothing new is signed" in out
    address = deploy_lines(out)["registry"].split()[0]
    assert home.w3.eth.get_transaction_count(DEPLOYER.address) == nonce + 1
    assert f'registry = "{address}"' in out
    # Once mined, the same command reports the same contract again instead of paying for another.
    again = home.ok("registry", "deploy", "--network", "sepolia")
    assert deploy_lines(again)["registry"].split()[0] == address
    assert home.w3.eth.get_transaction_count(DEPLOYER.address) == nonce + 1


def test_deploy_refusals_send_nothing(home: Home, rehearsal: tuple[Web3, Deployment]) -> None:
    line = home.refused("registry", "deploy", "--network", "amoy", "--yes")
    assert f"serves chain {SEPOLIA}, not 80002" in line
    # An OOv3 address with no code behind it (an account, not a contract).
    text = home.config.read_text().replace(rehearsal[1].oov3, dev_account(7).address)
    home.config.write_text(text)
    line = home.refused("registry", "deploy", "--network", "sepolia", "--yes")
    assert f"no contract at the OOv3 address {dev_account(7).address}" in line
    assert home.ok("kb", "add", str(KB_DOCS))
    registry = f'registry = "{dev_account(8).address}"'
    home.config.write_text(text.replace("[networks.sepolia]", f"[networks.sepolia]\n{registry}"))
    line = home.refused("ask", "How often should the wick be trimmed?", "--network", "sepolia")
    assert f"no contract at the OOv3 address {dev_account(7).address}" in line
    home.config.write_text(text.replace("[networks.sepolia]", f"[networks.sepolia]\n{registry}").replace(
        dev_account(7).address, rehearsal[1].oov3
    ))  # fmt: skip
    line = home.refused("ask", "How often should the wick be trimmed?", "--network", "sepolia")
    assert f"no contract at the registry address {dev_account(8).address}" in line
    # Without --yes and no terminal to answer the prompt, nothing is sent either.
    home.config.write_text(text.replace(dev_account(7).address, rehearsal[1].oov3))
    result = home.run("registry", "deploy", "--network", "sepolia")
    assert result.returncode == 1 and "cost:         at most " in result.stdout and "Deploy?" in result.stdout
    with DeployLog(home.root / "home" / "deploys.sqlite") as log:
        assert log.tx_intent(f"sepolia:{SEPOLIA}:{rehearsal[1].oov3}:900", "deploy-registry").status == "intent"
    assert home.config.read_text() == text.replace(dev_account(7).address, rehearsal[1].oov3)
    # An account without gas money.
    empty = Account.create()
    keystore = Account.encrypt(empty.key, "pw", kdf="pbkdf2", iterations=2)
    (home.root / "ape" / "accounts" / "empty.json").write_text(json.dumps(keystore))
    line = home.refused("registry", "deploy", "--network", "sepolia", "--account", "empty", "--yes")
    assert f"account {empty.address} has 0 ETH but the deploy may cost" in line and "fund it" in line


def test_every_address_is_overridable_per_network(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    oov3, oracle, currency = ("0x" + c * 40 for c in "abc")
    path.write_text(
        f'[networks.sepolia]\noov3 = "{oov3}"\noracle = "{oracle}"\ncurrency = "{currency}"\n'
        'identifier = "YES_OR_NO_QUERY"\nui_base = "https://ui.example/"\nconfirmations = 7\n'
    )
    config = load_config(path)
    net = config.resolve_network("sepolia")
    assert net.oov3 == oov3 and net.ui_base == "https://ui.example"
    assert str(net.oracle_ui_link("0x12", 3)).startswith("https://ui.example/?transactionHash=0x12&eventIndex=3")
    settings = config.network("sepolia")
    assert (settings.oracle, settings.currency, settings.identifier, settings.confirmations) == (
        oracle, currency, "YES_OR_NO_QUERY", 7,
    )  # fmt: skip
    assert config.resolve_network("amoy").oov3 == "0xd8866E76441df243fc98B892362Fc6264dC3ca80"  # untouched


def test_save_adds_one_line_or_refuses_with_the_lines_to_paste(tmp_path: Path) -> None:
    address = "0x" + "1" * 40
    fresh = tmp_path / "fresh.toml"
    save_network_key(fresh, "base-sepolia", "registry", address)
    assert load_config(fresh).network("base-sepolia").registry == address
    # A table written without a header (dotted keys) is not edited: the error names the lines to paste.
    dotted = tmp_path / "dotted.toml"
    dotted.write_text('networks.sepolia.rpc_url = "http://127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match=r"without a table header; add these lines .* by hand"):
        save_network_key(dotted, "sepolia", "registry", address)
    assert dotted.read_text() == 'networks.sepolia.rpc_url = "http://127.0.0.1:1"\n'
    # A header inside a multi-line string is not a header: refused, the file untouched.
    tricky = tmp_path / "tricky.toml"
    tricky.write_text('[llm]\nmodel = """\n[networks.sepolia]\n"""\n')
    with pytest.raises(ConfigError, match="cannot add the line safely"):
        save_network_key(tricky, "sepolia", "registry", address)
    assert tricky.read_text() == '[llm]\nmodel = """\n[networks.sepolia]\n"""\n'


def test_the_readme_network_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```toml\n")[1:]]
    (example,) = [b for b in blocks if "[networks.sepolia]" in b]
    path = tmp_path / "config.toml"
    path.write_text(example)
    assert load_config(path).network("sepolia").rpc_url_env == "SEPOLIA_RPC_URL"
