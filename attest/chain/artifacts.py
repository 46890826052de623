"""Contract ABIs and bytecode.

ABIs ship with the package (`attest/chain/abi/`, written by `scripts/export_abis.py`), so talking to a
live network needs no npm toolchain. Deploying the UMA stack (devnet, tests) reads the bytecode of the real
UMA contracts from the `@uma/core` npm package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from attest.errors import ToolchainMissing
from attest.paths import node_package

ABI_DIR = Path(__file__).parent / "abi"

# The UMA contracts the package needs ABIs for, by artifact name in @uma/core.
UMA_CONTRACTS = (
    "Finder",
    "IdentifierWhitelist",
    "AddressWhitelist",
    "Store",
    "MockOracleAncillary",
    "TestnetERC20",
    "OptimisticOracleV3",
)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # "0x…" creation code; "" when only the ABI is known


@cache
def shipped(name: str) -> Artifact:
    """An artifact bundled with the package (every ABI; bytecode only for our own contracts)."""
    path = ABI_DIR / f"{name}.json"
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data.get("bytecode", ""))


@cache
def _uma_index() -> dict[str, Path]:
    root = node_package("@uma/core") / "artifacts" / "contracts"
    return {p.stem: p for p in root.rglob("*.json") if not p.name.endswith(".dbg.json")}


def uma(name: str) -> Artifact:
    """A contract from the installed @uma/core package, with its creation bytecode."""
    path = _uma_index().get(name)
    if path is None:
        raise ToolchainMissing(f"@uma/core has no artifact named {name}; run `make install` to reinstall it")
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data["bytecode"])
