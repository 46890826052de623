"""The batch Merkle tree against OpenZeppelin's own implementation (npm @openzeppelin/merkle-tree, run by
tests/js/oz_merkle_tree.cjs): same root, same flat layout, same proof for every leaf."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from attest.batch import merkle
from attest.errors import BatchError

ROOT = Path(__file__).resolve().parent.parent
OZ_TREE = ROOT / "tests" / "js" / "oz_merkle_tree.cjs"


def digests(n: int, label: str = "record") -> list[bytes]:
    return [hashlib.sha256(f"{label} {i}".encode()).digest() for i in range(n)]


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def openzeppelin(values: list[bytes]) -> dict:
    node = shutil.which("node")
    assert node is not None, "node (Node 20) must be on PATH for the cross-check"
    out = subprocess.run(
        [node, str(OZ_TREE)],
        input=json.dumps([hx(v) for v in values]),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, f"@openzeppelin/merkle-tree (a devDependency: run `scripts/dev install`): {out.stderr}"
    return json.loads(out.stdout)


@pytest.mark.parametrize("n", [1, 2, 3, 1_000, 10_000])
def test_root_layout_and_every_proof_match_openzeppelin(n: int) -> None:
    values = digests(n)
    tree = merkle.build(values)
    oz = openzeppelin(values)
    assert hx(tree.root) == oz["root"]
    assert [hx(node) for node in tree.nodes] == oz["dump"]["tree"]
    assert list(tree.tree_index) == [v["treeIndex"] for v in oz["dump"]["values"]]
    assert oz["dump"]["leafEncoding"] == list(merkle.LEAF_ENCODING)
    proofs = [[hx(p) for p in tree.proof(i)] for i in range(n)]
    assert proofs == oz["proofs"]
    assert all(merkle.verify(values[i], tree.proof(i), tree.root) for i in range(0, n, max(1, n // 50)))


def test_the_root_does_not_depend_on_input_order_but_indices_follow_it() -> None:
    values = digests(7)
    forward, backward = merkle.build(values), merkle.build(values[::-1])
    assert forward.root == backward.root
    assert forward.proof(0) == backward.proof(6)


def test_forged_proofs_and_other_roots_fail() -> None:
    values = digests(5)
    tree = merkle.build(values)
    other = merkle.build(digests(5, "other"))
    proof = tree.proof(2)
    assert merkle.verify(values[2], proof, tree.root)
    assert not merkle.verify(values[2], proof, other.root)
    assert not merkle.verify(values[3], proof, tree.root)
    assert not merkle.verify(values[2], [*proof[:-1], bytes(32)], tree.root)
    assert not merkle.verify(hashlib.sha256(b"outsider").digest(), proof, tree.root)
    # An inner node is never accepted as a leaf digest: leaves are hashed twice.
    assert not merkle.verify(tree.nodes[1], [tree.nodes[2]], tree.root)


def test_empty_repeated_and_malformed_input_is_refused() -> None:
    with pytest.raises(BatchError, match="at least one record"):
        merkle.build([])
    with pytest.raises(BatchError, match="twice"):
        merkle.build([*digests(3), digests(3)[1]])
    with pytest.raises(BatchError, match="32 bytes"):
        merkle.build([b"short"])
    with pytest.raises(BatchError, match="outside the batch"):
        merkle.build(digests(2)).proof(2)


def test_the_keccak_of_the_tree_is_keccak256_and_safe_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from eth_utils.crypto import keccak

    for data in (b"", b"abc", b"x" * 64, b"y" * 200):
        assert merkle._hasher()(data) == keccak(data)
    values = [hashlib.sha256(f"thread {i}".encode()).digest() for i in range(2_000)]
    expected = merkle.build(values).root
    with ThreadPoolExecutor(8) as pool:  # each thread hashes on its own state
        assert set(pool.map(lambda _: merkle.build(values).root, range(16))) == {expected}
