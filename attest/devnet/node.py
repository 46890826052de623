"""The local devnet: anvil from node_modules with the real UMA stack and our registry deployed once.

Everything lives in `<ATTEST_HOME>/devnet/`: anvil's persisted chain (`state.json`, written by anvil itself
on exit and every few seconds), the deployed addresses (`deployment.json`), the running node (`node.json`)
and its log. `up` after `down` reloads the same chain: same addresses, same assertions, later time.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from web3 import Web3

from attest.accounts import DEV_ACCOUNTS, DEV_MNEMONIC, dev_account
from attest.chain.rpc import http_provider
from attest.chain.tx import Sender
from attest.devnet.governance import deploy_governance
from attest.devnet.stack import Deployment, StackParams, deploy_stack
from attest.errors import CorruptState, DevnetError, PortBusy
from attest.localnet import HOST, log_tail, port_in_use
from attest.networks import DEVNET_PORT, LOCAL_CHAIN_ID
from attest.paths import anvil_executable, attest_home, require_writable

STATE_INTERVAL_S = 2
DAO_HOLDERS = 5  # dev:0 to dev:4 hold the devnet DAO's votes; dev:5 and up hold none
PORT_ENV = "ATTEST_DEVNET_PORT"  # the devnet's port setting
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class NodeInfo:
    pid: int
    port: int
    started_at: float

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    rpc_url: str | None
    pid: int | None
    block_number: int | None
    chain_time: int | None
    deployment: Deployment | None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (possible when we spawned it in this process) counts as dead.
    # Reading a process that exits meanwhile fails with ESRCH (ProcessLookupError), not only ENOENT.
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _web3(url: str, timeout: float = 3.0) -> Web3:
    return Web3(http_provider(url, timeout))


class Devnet:
    def __init__(self, home: Path | None = None) -> None:
        self.dir = (home or attest_home()) / "devnet"
        self.state_file = self.dir / "state.json"
        self.deployment_file = self.dir / "deployment.json"
        self.node_file = self.dir / "node.json"
        self.log_file = self.dir / "anvil.log"
        self.port_file = (
            self.dir / "port"
        )  # the port of the last start, for the next `up` without one (reset forgets it)

    # -- files -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up`/`down`/`reset` at a time per home, so two shells cannot start two nodes on one state."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def node(self) -> NodeInfo | None:
        if not self.node_file.exists():
            return None
        try:
            return NodeInfo(**json.loads(self.node_file.read_text()))
        except (ValueError, TypeError):
            raise CorruptState(
                f"{self.node_file} is corrupt; stop any anvil you started by hand, delete the file and retry"
            ) from None

    def deployment(self) -> Deployment | None:
        if not self.deployment_file.exists():
            return None
        try:
            return Deployment.from_json(self.deployment_file.read_text())
        except (ValueError, TypeError):
            raise CorruptState(
                f"{self.deployment_file} is corrupt; `attest devnet reset` starts a fresh chain"
            ) from None

    def _check_state_file(self) -> None:
        if not self.state_file.exists():
            if self.deployment_file.exists():
                raise CorruptState(
                    f"{self.deployment_file} exists but the chain state {self.state_file} is gone; "
                    "`attest devnet reset` starts a fresh chain"
                )
            return
        try:
            with open(self.state_file) as f:
                state = json.load(f)
            if not isinstance(state, dict) or "accounts" not in state:
                raise ValueError("no accounts")
        except (ValueError, UnicodeDecodeError):
            raise CorruptState(
                f"chain state {self.state_file} is corrupt; `attest devnet reset` discards it and starts fresh"
            ) from None

    # -- lifecycle -------------------------------------------------------------------------------------
    def running_node(self) -> NodeInfo | None:
        """The node we started, if it is still alive; a stale node.json (crashed anvil) is removed."""
        node = self.node()
        if node is None:
            return None
        if _pid_alive(node.pid):
            return node
        self.node_file.unlink(missing_ok=True)
        return None

    def default_port(self) -> int:
        """ATTEST_DEVNET_PORT, else the port of the last start (a devnet moved off 8545 stays moved, also when
        `ask` starts it on demand), else 8545."""
        setting = os.environ.get(PORT_ENV)
        if setting:
            if not setting.isdigit() or not 0 < int(setting) < 65536:
                raise DevnetError(f"{PORT_ENV}={setting!r} is not a port; set it to a number from 1 to 65535")
            return int(setting)
        with contextlib.suppress(OSError, ValueError):
            return int(self.port_file.read_text())
        return DEVNET_PORT

    def up(self, port: int | None = None, *, bond_decimals: int | None = None) -> tuple[DevnetStatus, bool]:
        """Start the node (and deploy on first start) on `port` (default: `default_port()`). Returns the status and
        whether it was already up. `bond_decimals`: the bond token's decimals on first start (default 6, as USDC);
        a chain deployed with others is refused rather than silently kept."""
        require_writable(self.dir, "attest devnet up")
        port = port if port is not None else self.default_port()
        with self._lock():
            if bond_decimals is not None and (deployed_stack := self.deployment()) is not None:
                deployed = int(deployed_stack.params.get("currency_decimals", StackParams().currency_decimals))
                if deployed != bond_decimals:
                    raise DevnetError(
                        f"the devnet's bond token has {deployed} decimals, not {bond_decimals}; `attest devnet reset "
                        f"--yes` first to deploy one with {bond_decimals}"
                    )
            node = self.running_node()
            if node is not None:
                return self._status(node), True
            anvil = anvil_executable()
            self._check_state_file()
            deployment = self.deployment()
            if port_in_use(port):
                raise PortBusy(self._describe_port_owner(port))
            node = self._start(anvil, port)
            try:
                w3 = _web3(node.rpc_url)
                if deployment is None:
                    params = StackParams() if bond_decimals is None else StackParams.with_decimals(bond_decimals)
                    deployment = self._deploy(w3, params)
                else:
                    self._verify(w3, deployment)
                    self._resume_clock(w3)
                    if not deployment.kb_registry:  # deployed before the governed knowledge base existed
                        deployment = self._deploy_governance(w3, deployment)
            except BaseException:
                # Nothing half-made stays behind: kill without letting anvil dump, drop what it wrote.
                self._kill(node, signal.SIGKILL)
                if not self.deployment_file.exists():
                    self.state_file.unlink(missing_ok=True)
                raise
            _atomic_write(self.port_file, str(port))  # once the devnet works there
            return self._status(node), False

    def down(self) -> bool:
        """Stop the node, letting anvil write its state. Returns False when it was not running."""
        with self._lock():
            node = self.running_node()
            if node is None:
                return False
            with contextlib.suppress(Exception):  # a wedged node still gets stopped; anvil dumps on exit too
                self._save_state(_web3(node.rpc_url))
            self._kill(node, signal.SIGTERM)
            return True

    def reset(self) -> None:
        """Stop the node and forget the chain and its deployment."""
        self.down()
        with self._lock():
            for path in (self.state_file, self.deployment_file, self.log_file, self.port_file):
                path.unlink(missing_ok=True)

    def status(self) -> DevnetStatus:
        node = self.running_node()
        if node is None:
            return DevnetStatus(False, None, None, None, None, self.deployment())
        return self._status(node)

    def web3(self) -> Web3:
        node = self.running_node()
        if node is None:
            raise DevnetError("the devnet is not running; start it with `attest devnet up`")
        return _web3(node.rpc_url)

    def advance(self, seconds: int) -> int:
        """Move the chain's clock `seconds` ahead and mine a block stamped then (what trying `settle` after a
        liveness needs). Returns the new chain time. The offset survives `down` and `up` (see `_resume_clock`)."""
        if seconds <= 0:
            raise DevnetError("advance the clock by a positive duration, such as 2h, 30m or 90s")
        w3 = self.web3()
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        return int(w3.eth.get_block("latest")["timestamp"])

    def mine(self, blocks: int) -> int:
        """Mine `blocks` empty blocks, a second apart (a DAO vote's delay and period count blocks). Returns the
        new block number."""
        if blocks <= 0:
            raise DevnetError("mine a positive number of blocks, such as --blocks 10")
        w3 = self.web3()
        w3.provider.make_request("anvil_mine", [hex(blocks), "0x1"])  # type: ignore[arg-type]
        return int(w3.eth.block_number)

    # -- internals -------------------------------------------------------------------------------------
    def _start(self, anvil: Path, port: int) -> NodeInfo:
        cmd = [
            str(anvil),
            "--host",
            HOST,
            "--port",
            str(port),
            "--chain-id",
            str(LOCAL_CHAIN_ID),
            "--mnemonic",
            DEV_MNEMONIC,
            "--accounts",
            str(DEV_ACCOUNTS),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(STATE_INTERVAL_S),
        ]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = NodeInfo(pid=proc.pid, port=port, started_at=time.time())
        deadline = time.monotonic() + START_TIMEOUT_S
        w3 = _web3(node.rpc_url, timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise DevnetError(
                        f"anvil exited with code {proc.returncode} at start; see {self.log_file}"
                        + log_tail(self.log_file)
                    )
                with contextlib.suppress(Exception):
                    if w3.eth.chain_id == LOCAL_CHAIN_ID:
                        _atomic_write(self.node_file, json.dumps(asdict(node)))
                        return node
                time.sleep(0.1)
        except BaseException:
            # Ctrl-C while anvil starts (even just after node.json is written): the caller never got the node
            # to clean up, so it is killed here.
            self._kill(node, signal.SIGKILL)
            raise
        self._kill(node, signal.SIGKILL)
        raise DevnetError(f"anvil did not answer on {node.rpc_url} within {START_TIMEOUT_S:.0f}s; see {self.log_file}")

    def _kill(self, node: NodeInfo, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                # Our child is reaped, not only seen dead: a zombie left at our exit goes to PID 1, which in some
                # containers never reaps. A multi-threaded anvil shows "Z" before it can be reaped, so wait for it.
                if os.waitpid(node.pid, os.WNOHANG)[0] == node.pid:
                    break
            except ChildProcessError:  # started by another process: watch it instead
                if not _pid_alive(node.pid):
                    break
            time.sleep(0.02)
        if _pid_alive(node.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        self.node_file.unlink(missing_ok=True)

    def _deploy(self, w3: Web3, params: StackParams) -> Deployment:
        accounts = tuple(dev_account(i).address for i in range(DEV_ACCOUNTS))
        deployment = deploy_stack(Sender(w3, dev_account(0)), params, mint_to=accounts)
        return self._deploy_governance(w3, deployment)

    def _deploy_governance(self, w3: Web3, deployment: Deployment) -> Deployment:
        holders = [dev_account(i).address for i in range(DAO_HOLDERS)]
        governance = deploy_governance(Sender(w3, dev_account(0)), holders)
        deployment = replace(deployment, **asdict(governance), block_number=w3.eth.block_number)
        # State first: a crash between the two writes leaves a chain without a deployment file, which the
        # next `up` simply deploys to again, never a deployment file pointing at contracts that are gone.
        self._save_state(w3)
        _atomic_write(self.deployment_file, deployment.to_json())
        return deployment

    def _save_state(self, w3: Web3) -> None:
        """Write the chain to `state.json` now and atomically (anvil's own dumps run on a timer and on exit)."""
        dumped = w3.provider.make_request("anvil_dumpState", [])  # type: ignore[arg-type]
        if "result" not in dumped:
            raise DevnetError(f"anvil could not dump its state: {dumped.get('error')}")
        _atomic_write(self.state_file, gzip.decompress(bytes.fromhex(dumped["result"][2:])).decode())

    def _verify(self, w3: Web3, deployment: Deployment) -> None:
        genesis = w3.eth.get_block(0)["hash"].to_0x_hex()
        if genesis != deployment.genesis_hash or not w3.eth.get_code(Web3.to_checksum_address(deployment.registry)):
            raise CorruptState(
                f"the chain in {self.state_file} does not hold the contracts in {self.deployment_file}; "
                "`attest devnet reset` starts a fresh chain"
            )

    @staticmethod
    def _resume_clock(w3: Web3) -> None:
        """anvil does not persist a time offset (`evm_increaseTime`, used to skip liveness), so a reloaded
        chain would stamp new blocks with the wall clock, before its last block. Re-apply the offset."""
        ahead = int(w3.eth.get_block("latest")["timestamp"]) - int(time.time())
        if ahead >= 0:
            w3.provider.make_request("evm_increaseTime", [ahead + 1])  # type: ignore[arg-type]

    def _status(self, node: NodeInfo) -> DevnetStatus:
        w3 = _web3(node.rpc_url)
        try:
            block = w3.eth.get_block("latest")
        except Exception:
            return DevnetStatus(False, node.rpc_url, node.pid, None, None, self.deployment())
        return DevnetStatus(
            True, node.rpc_url, node.pid, int(block["number"]), int(block["timestamp"]), self.deployment()
        )

    def _describe_port_owner(self, port: int) -> str:
        url = f"http://{HOST}:{port}"
        try:
            w3 = _web3(url, timeout=2.0)
            client = w3.client_version
            chain_id = w3.eth.chain_id
            owner = f"another Ethereum node ({client}, chain id {chain_id})"
        except Exception:
            owner = "a process that is not our devnet"
        return f"port {port} on {HOST} is held by {owner}; stop it or pick another port with --port"
