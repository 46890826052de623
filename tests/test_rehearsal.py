"""The testnet rehearsal: a public network played on anvil, every step through the installed console scripts as a
new user runs them. An anvil serving sepolia's chain id (11155111) gets the UMA stack with a 6-decimal bond token
(USDC's), the config points `sepolia` at it, a js-ipfs daemon is the IPFS remote; then
`attest registry deploy` → `attest ask` (a right answer and a wrong one) → `attest verify` from a second home that
has only the remote → `disputer run --once` disputes the wrong one → its price pushed to the mock oracle → settle →
Attested / Rejected in the registry, and the Oracle UI link printed is the testnet.oracle.uma.xyz one for the
assertion's transaction and event. Off the devnet, a config without an IPFS remote is refused. Then the core of it
on a VotingV2 network (chain id 1 on anvil): the wrong answer's dispute is voted by commit and reveal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.artifacts import shipped
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.tx import Sender
from attest.chain.voting import RoundPhase
from attest.devnet import Deployment, deploy_stack
from attest.devnet.stack import StackParams
from attest.ledger import Ledger
from tests.support.dvm import Dvm, deploy_dvm, throwaway_anvil
from tests.support.jsipfs import JsIpfsDaemon

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

ATTEST = str(Path(sys.executable).with_name("attest"))
DISPUTER = str(Path(sys.executable).with_name("disputer"))
KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"
WRONG = "The wick never needs trimming; replace the whole lamp once a year."
SEPOLIA = 11155111
ASKER = dev_account(5)  # keystore "alice": deploys the registry and asks
WATCHER = dev_account(6)  # keystore "watcher": the disputer
ACCOUNTS = (("alice", ASKER), ("watcher", WATCHER))
ATTESTED, REJECTED = 3, 4  # AttestationRegistry.Status


class Home:
    """An ATTEST_HOME with keystores for alice and watcher and a config file written by the test."""

    def __init__(self, root: Path, accounts: tuple[tuple[str, LocalAccount], ...] = ACCOUNTS) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True)
        keystores = root / "ape" / "accounts"
        keystores.mkdir(parents=True)
        for alias, key in accounts:
            encrypted = Account.encrypt(key.key, "pw", kdf="pbkdf2", iterations=2)
            (keystores / f"{alias}.json").write_text(json.dumps(encrypted))
        self.config = self.home / "config.toml"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
        self.env = {**clean, "ATTEST_HOME": str(self.home), "APE_DATA_FOLDER": str(root / "ape"),
                    "ATTEST_PASSPHRASE": "pw"}  # fmt: skip

    def run(self, *args: str, tool: str = ATTEST) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, *args], env=self.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            check=False,
        )  # fmt: skip

    def ok(self, *args: str, tool: str = ATTEST) -> str:
        result = self.run(*args, tool=tool)
        assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result.stdout


@pytest.fixture(scope="module")
def sepolia() -> Iterator[tuple[Web3, Deployment]]:
    """anvil with sepolia's chain id and the UMA stack (Finder, whitelists, Store, mock oracle, 6-decimal USDC,
    OOv3), bond tokens minted to alice and watcher."""
    with throwaway_anvil(chain_id=SEPOLIA) as w3:
        stack = deploy_stack(
            Sender(w3, dev_account(0)), StackParams.with_decimals(6), mint_to=(ASKER.address, WATCHER.address)
        )
        yield w3, stack


def network_table(w3: Web3, stack: Deployment) -> str:
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    # Every UMA address comes from the config (a new deployment needs no release); anvil mines a block per
    # transaction, so the disputer reads the head without waiting for confirmations.
    return (
        f'[networks.sepolia]\nrpc_url = "{url}"\noov3 = "{stack.oov3}"\noracle = "{stack.oracle}"\n'
        f'currency = "{stack.currency}"\nconfirmations = 0\n'
    )


def advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def ui_link(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.strip().startswith("oracle UI")]
    return line.split(None, 2)[2].strip()


def made_log_index(w3: Web3, oov3: str, tx_hash: str, assertion_id: str) -> int:
    """Where the AssertionMade event of `assertion_id` sits in its block, read from the receipt."""
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    made = OptimisticOracleV3(w3, oov3).assertions_made(receipt)
    (index,) = [m.log_index for m in made if "0x" + m.assertion_id.hex() == assertion_id]
    return index


def test_a_testnet_without_an_ipfs_remote_is_refused(tmp_path: Path, sepolia: tuple[Web3, Deployment]) -> None:
    w3, stack = sepolia
    user = Home(tmp_path)
    registry = f'registry = "{stack.registry}"\n'  # the stack's own registry: this test deploys nothing
    user.config.write_text('[defaults]\naccount = "alice"\n\n' + network_table(w3, stack) + registry)
    user.ok("kb", "add", str(KB_DOCS))
    nonce = w3.eth.get_transaction_count(ASKER.address)
    refused = user.run("ask", QUESTION, "--network", "sepolia")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("Error: no IPFS remote is configured for sepolia"), line
    assert "[ipfs] kubo_api" in line and "[[ipfs.pinning]]" in line and "--publish-elsewhere" in line
    assert w3.eth.get_transaction_count(ASKER.address) == nonce  # nothing signed or sent
    with Ledger(user.home / "ledger.sqlite") as ledger:
        assert ledger.select() == []  # nothing written

    # Publishing by other means is the asserter's call: it asserts, with a warning.
    asked = user.run("ask", QUESTION, "--network", "sepolia", "--publish-elsewhere", "--json")
    assert asked.returncode == 0, asked.stderr
    assert "--publish-elsewhere: no IPFS remote is configured" in asked.stderr
    assert json.loads(asked.stdout)["assertion_id"]


def test_rehearsal_on_sepolia(tmp_path: Path, sepolia: tuple[Web3, Deployment], daemon: JsIpfsDaemon) -> None:
    w3, stack = sepolia
    user = Home(tmp_path / "asker")
    remote = f'[ipfs]\ntimeout_s = 20\nkubo_api = "{daemon.api}"\n\n'
    user.config.write_text(
        '[defaults]\naccount = "alice"\n\n[llm]\nprovider = "extractive"\n\n'
        '[disputer]\naccount = "watcher"\nsamples = 1\nattempts = 1\nmax_bond_per_dispute = "250"\n\n'
        + remote
        + network_table(w3, stack)
    )

    # The doctor first: everything is in place but our registry, and it says how to deploy one.
    before = user.run("doctor", "--network", "sepolia", "--json")
    assert before.returncode == 1 and "Traceback" not in before.stderr, before.stderr
    checks = json.loads(before.stdout)["checks"]
    found = {c["name"]: c for c in checks}
    no_registry = found["registry"]
    assert no_registry["status"] == "fail" and "attest registry deploy" in no_registry["detail"] + no_registry["fix"]
    assert all(c["status"] == "pass" for c in checks if c["name"] in ("rpc", "oov3", "identifier", "currency"))
    assert "USDC" in found["currency"]["detail"]
    assert next(c["status"] for c in checks if c["name"] == "ipfs") == "pass"  # the js-ipfs remote answers

    deployed = user.ok("registry", "deploy", "--network", "sepolia", "--yes", "--save")
    registry = re.search(r"registry:\s+(0x[0-9a-fA-F]{40})", deployed)
    assert registry is not None, deployed
    address = registry.group(1)
    assert f'registry = "{address}"' in user.config.read_text()
    ready = user.run("doctor", "--network", "sepolia")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready.stdout.strip().splitlines()[-1].startswith("ready") and "FAIL" not in ready.stdout

    user.ok("kb", "add", str(KB_DOCS))
    right = user.ok("ask", QUESTION, "--network", "sepolia")
    wrong = user.ok("ask", QUESTION, "--network", "sepolia", "--answer", WRONG, "--bond", "200.5")
    assert "bond       200 USDC" in right and "bond       200.5 USDC" in wrong
    with Ledger(user.home / "ledger.sqlite") as ledger:
        good, bad = ledger.select()
    assert good.assertion_id and bad.assertion_id and good.assert_tx and good.log_index is not None
    for shown, a in ((right, good), (wrong, bad)):
        assert a.assertion_id and a.assert_tx
        index = made_log_index(w3, stack.oov3, a.assert_tx, a.assertion_id)
        assert ui_link(shown) == (
            f"https://testnet.oracle.uma.xyz/?transactionHash={a.assert_tx}&eventIndex={index}"
            f"&chainId={SEPOLIA}&oracleType=Optimistic+Oracle+V3"
        )

    # A voter's view: another home with the same config but none of alice's blockstore, KB or ledger.
    voter = Home(tmp_path / "voter")
    voter.config.write_text(remote + network_table(w3, stack) + f'registry = "{address}"\n')
    for a in (good, bad):
        checked = voter.ok("verify", str(a.assertion_id), "--network", "sepolia")
        assert "all checks passed" in checked and "FAIL" not in checked, checked

    # The disputer (watcher) judges both offline: it disputes the wrong answer only, then pushes the price of the
    # false claim to the mock oracle and settles it, over a few passes.
    oov3 = OptimisticOracleV3(w3, stack.oov3)
    bad_id, good_id = (bytes.fromhex(str(a.assertion_id)[2:]) for a in (bad, good))
    for _ in range(4):
        user.ok("run", "--once", "--network", "sepolia", tool=DISPUTER)
        if oov3.get_assertion(bad_id).settled:
            break
    disputed = oov3.get_assertion(bad_id)
    assert disputed.disputer == WATCHER.address and disputed.settled and disputed.settlement_resolution is False
    assert not oov3.get_assertion(good_id).disputed

    advance(w3, 7300)  # past the right answer's liveness (OOv3's default 7200 s)
    settled = user.ok("settle", "--all")
    assert "settled - attested" in settled, settled
    listed = {row["id"]: row for row in json.loads(user.ok("list", "--json"))}
    assert (listed[good.id]["status"], listed[good.id]["outcome"]) == ("settled", "attested")
    assert (listed[bad.id]["status"], listed[bad.id]["outcome"]) == ("settled", "rejected")
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=shipped("AttestationRegistry").abi)
    assert contract.functions.attestationOf(good_id).call()[2] == ATTESTED
    assert contract.functions.attestationOf(bad_id).call()[2] == REJECTED
    assert contract.functions.isAttested(bytes.fromhex(good.digest[2:])).call() is True
    assert contract.functions.isAttested(bytes.fromhex(bad.digest[2:])).call() is False


# -- the same core on a VotingV2 network: chain id 1 on anvil, disputes voted by commit and reveal ---------------
STAKE = 5_000_000 * 10**18  # the watcher's stake: alone past the GAT and the SPAT


@pytest.fixture(scope="module")
def ethereum() -> Iterator[Dvm]:
    """anvil with mainnet's chain id and UMA's VotingV2 behind OOv3: dev 1 (alice) asserts, dev 2 (watcher) disputes
    and votes with its own stake."""
    with throwaway_anvil(chain_id=1) as w3:
        yield deploy_dvm(w3, [dev_account(i) for i in range(5)], {2: STAKE})


def test_rehearsal_on_a_voting_v2_network(tmp_path: Path, ethereum: Dvm, daemon: JsIpfsDaemon) -> None:
    dvm, w3 = ethereum, ethereum.w3
    user = Home(tmp_path, accounts=(("alice", dev_account(1)), ("watcher", dev_account(2))))
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    user.config.write_text(
        '[defaults]\naccount = "alice"\n\n[llm]\nprovider = "extractive"\n\n'
        '[disputer]\naccount = "watcher"\nsamples = 1\nattempts = 1\n\n'
        f'[ipfs]\ntimeout_s = 20\nkubo_api = "{daemon.api}"\n\n'
        f'[networks.ethereum]\nrpc_url = "{url}"\noov3 = "{dvm.base.oov3}"\noracle = "{dvm.dvm.voting}"\n'
        f'currency = "{dvm.base.currency}"\nconfirmations = 0\n'
    )

    assert user.run("doctor", "--network", "ethereum").returncode == 1  # no registry yet
    user.ok("registry", "deploy", "--network", "ethereum", "--yes", "--save")
    assert user.ok("doctor", "--network", "ethereum").strip().splitlines()[-1].startswith("ready")
    user.ok("kb", "add", str(KB_DOCS))
    right = user.ok("ask", QUESTION, "--network", "ethereum")
    user.ok("ask", QUESTION, "--network", "ethereum", "--answer", WRONG)
    with Ledger(user.home / "ledger.sqlite") as ledger:
        good, bad = ledger.select()
    assert good.assertion_id and good.assert_tx and bad.assertion_id
    index = made_log_index(w3, dvm.base.oov3, good.assert_tx, good.assertion_id)
    assert ui_link(right) == (
        f"https://oracle.uma.xyz/?transactionHash={good.assert_tx}&eventIndex={index}"
        "&chainId=1&oracleType=Optimistic+Oracle+V3"
    )
    for a in (good, bad):
        assert "all checks passed" in user.ok("verify", str(a.assertion_id), "--network", "ethereum")

    def passes() -> None:
        user.ok("run", "--once", "--network", "ethereum", tool=DISPUTER)

    bad_id, good_id = (bytes.fromhex(str(a.assertion_id)[2:]) for a in (bad, good))
    passes()  # judges both offline, disputes the wrong answer: a price request to VotingV2
    assert dvm.oov3.get_assertion(bad_id).disputer == dev_account(2).address
    assert not dvm.oov3.get_assertion(good_id).disputed
    vote_round = dvm.voting.current_round_id() + 1  # the request is voted on in the next round
    dvm.warp_to_phase(vote_round, RoundPhase.COMMIT)
    passes()  # commits price 0 (the salt is kept before the commit is sent)
    dvm.warp_to_phase(vote_round, RoundPhase.REVEAL)
    passes()  # reveals it
    dvm.warp_to_phase(vote_round + 1, RoundPhase.COMMIT)  # the round is over: the vote resolved
    passes()  # settles the wrong answer's assertion
    settled = dvm.oov3.get_assertion(bad_id)
    assert settled.settled and settled.settlement_resolution is False

    dvm.warp_to(dvm.now() + 7300)  # past the right answer's liveness
    assert "settled - attested" in user.ok("settle", "--all")
    listed = {row["id"]: row["outcome"] for row in json.loads(user.ok("list", "--json"))}
    assert listed == {good.id: "attested", bad.id: "rejected"}
    address = re.search(r'registry = "(0x[0-9a-fA-F]{40})"', user.config.read_text())
    assert address is not None
    registry = Web3.to_checksum_address(address.group(1))
    contract = w3.eth.contract(address=registry, abi=shipped("AttestationRegistry").abi)
    assert contract.functions.attestationOf(good_id).call()[2] == ATTESTED
    assert contract.functions.attestationOf(bad_id).call()[2] == REJECTED
