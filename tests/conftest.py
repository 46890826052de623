"""Shared fixtures: dev keys, and a real UMA stack deployed by the same code `attest devnet` uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.devnet import DEV_MNEMONIC

Account.enable_unaudited_hdwallet_features()


@pytest.fixture(scope="session")
def dev_keys() -> list[LocalAccount]:
    """The anvil dev accounts (ape-config.yaml's test mnemonic): 0 deploys, 1 asserts, 2 disputes, 3 is a stranger."""
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(5)]


@pytest.fixture
def attest_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    home = tmp_path_factory.mktemp("attest-home")
    monkeypatch.setenv("ATTEST_HOME", str(home))
    yield str(home)


def checksum(address: str) -> str:
    return Web3.to_checksum_address(address)
