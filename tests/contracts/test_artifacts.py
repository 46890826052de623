"""The ABIs and bytecode shipped in attest/chain/abi/ are exactly what the sources produce today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ape import project

from attest.chain.artifacts import ABI_DIR, shipped

ROOT = Path(__file__).resolve().parents[2]


def _export_module():
    spec = importlib.util.spec_from_file_location("export_abis", ROOT / "scripts" / "export_abis.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_artifacts_match_contracts_and_uma_package() -> None:
    project.load_contracts()  # compiles contracts/ into .build/ if anything changed
    export = _export_module()
    expected = export.expected_files()
    assert {p.name for p in ABI_DIR.glob("*.json")} == set(expected)
    stale = [name for name, content in expected.items() if (ABI_DIR / name).read_text() != export.render(content)]
    assert stale == [], f"run `make abis`: {stale} differ from their sources"


def test_shipped_registry_bytecode_is_the_compiled_one() -> None:
    compiled = project.AttestationRegistry.contract_type.deployment_bytecode.bytecode
    assert shipped("AttestationRegistry").bytecode == compiled
