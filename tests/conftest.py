"""Shared fixtures: dev keys, and a real UMA stack deployed by the same code `attest devnet` uses."""

from __future__ import annotations

import functools
import os
import socket
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.devnet import Deployment, Devnet
from attest.storage import Postgres
from attest.ui.disputer_view import DISPUTER_VIEW_GROUP
from tests.support.jsipfs import JsIpfsDaemon
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, running_server

PASSWORD_ENV = "ATTEST_DB_PASSWORD"


@functools.cache
def declared_disputer_view() -> tuple[EntryPoint, ...]:
    """The `attest.disputer_view` entry points as this checkout's pyproject.toml declares them."""
    group = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["entry-points"]
    return tuple(EntryPoint(name, target, DISPUTER_VIEW_GROUP) for name, target in group[DISPUTER_VIEW_GROUP].items())


@pytest.fixture(autouse=True)
def disputer_view_as_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard finds the disputer through pyproject's declaration, not the shared environment's last install
    (an editable install reads entry points at install time, so one made before a change would test the old)."""
    found = list(declared_disputer_view())
    monkeypatch.setattr(
        "attest.ui.disputer_view.entry_points", lambda group: found if group == DISPUTER_VIEW_GROUP else []
    )


@pytest.fixture(scope="session")
def dev_keys() -> list[LocalAccount]:
    """The anvil dev accounts (ape-config.yaml's test mnemonic): 0 deploys, 1 asserts, 2 disputes, 3 is a stranger."""
    return [dev_account(i) for i in range(5)]


@pytest.fixture
def attest_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    home = tmp_path_factory.mktemp("attest-home")
    monkeypatch.setenv("ATTEST_HOME", str(home))
    yield str(home)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of its own for this test, its password where llm-attest reads it."""
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Path | Postgres]:
    """Where a test's stores live, once per backend: a file name gives the SQLite file in the test's directory,
    or this test's PostgreSQL database (every store in its own schema there)."""
    if request.param == "sqlite":
        return lambda name: tmp_path / name
    where = Postgres(request.getfixturevalue("postgres_url"))
    return lambda name: where


def checksum(address: str) -> str:
    return Web3.to_checksum_address(address)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsIpfsDaemon]:
    node = JsIpfsDaemon(tmp_path_factory.mktemp("jsipfs") / "repo", free_port(), free_port())
    node.start(timeout_s=90)
    pid = node.pid
    assert pid is not None
    yield node
    node.stop()
    # Teardown checks `stop`: the daemon's process is gone and its API no longer answers.
    assert not _pid_alive(pid)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", node.api_port), timeout=2):
        pass


@dataclass
class LocalChain:
    """The session's devnet seen from one test: its own ATTEST_HOME whose `devnet/` is the shared node's."""

    home: Path
    w3: Web3
    deployment: Deployment

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


@pytest.fixture(scope="session")
def devnet_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One anvil with the real UMA stack for the whole session (deploying takes seconds, snapshots are free)."""
    home = tmp_path_factory.mktemp("devnet-home")
    devnet = Devnet(home)
    devnet.up(free_port())
    yield home
    devnet.down()


@pytest.fixture
def local_chain(devnet_home: Path, attest_home: str) -> Iterator[LocalChain]:
    """The shared devnet, reverted after the test: what one test sends never leaks into the next."""
    home = Path(attest_home)
    (home / "devnet").symlink_to(devnet_home / "devnet", target_is_directory=True)
    devnet = Devnet(home)
    deployment = devnet.deployment()
    assert deployment is not None
    w3 = devnet.web3()
    snapshot = w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    yield LocalChain(home, w3, deployment)
    assert w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"] is True
