"""Write the ABIs (and our own contracts' bytecode) that ship in attest/chain/abi/.

Run after `ape compile`: `python scripts/export_abis.py`. tests/test_artifacts.py fails when the files and
their sources disagree, so a stale export cannot land.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attest.chain.artifacts import ABI_DIR, UMA_CONTRACTS, uma  # noqa: E402

OUR_CONTRACTS = (
    "AttestationRegistry",
    # A governed knowledge base: the registry of approved documents and the DAO that governs it.
    "KnowledgeRegistry",
    "KnowledgeGovernor",
    "KnowledgeTimelock",
    "KnowledgeVotes",
)
# The DVM's contracts, for voting on networks where disputes go to UMA's VotingV2 (attest/chain/voting.py).
DVM_CONTRACTS = ("VotingV2", "VotingToken")


def expected_files() -> dict[str, dict]:
    """File name → content, from the compiled project (.build) and the installed @uma/core."""
    manifest = json.loads((ROOT / ".build" / "__local__.json").read_text())
    files: dict[str, dict] = {}
    for name in OUR_CONTRACTS:
        ct = manifest["contractTypes"][name]
        files[f"{name}.json"] = {
            "contractName": name,
            "abi": ct["abi"],
            "bytecode": ct["deploymentBytecode"]["bytecode"],
        }
    for name in UMA_CONTRACTS + DVM_CONTRACTS:
        files[f"{name}.json"] = {"contractName": name, "source": "@uma/core", "abi": uma(name).abi}
    return files


def render(content: dict) -> str:
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def main() -> None:
    ABI_DIR.mkdir(parents=True, exist_ok=True)
    for file_name, content in expected_files().items():
        (ABI_DIR / file_name).write_text(render(content))
        print(f"wrote {ABI_DIR.relative_to(ROOT) / file_name}")


if __name__ == "__main__":
    main()
