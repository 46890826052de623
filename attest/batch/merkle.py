"""The Merkle tree of a batch: OpenZeppelin's StandardMerkleTree over bytes32 record digests.

Same leaves, layout and proofs as npm `@openzeppelin/merkle-tree` (`StandardMerkleTree.of(digests,
["bytes32"])`), so `MerkleProof.verify` in `@openzeppelin/contracts` — and so our registry — accepts our proofs,
and anyone can rebuild a batch's root from its manifest with OpenZeppelin's own library:
- leaf = keccak256(keccak256(abi.encode(bytes32 digest))): hashing twice keeps a leaf from ever being read as
  an inner node (a second-preimage guard);
- an inner node = keccak256 of its two children sorted as numbers, so a proof needs no left/right flags;
- the leaves sit at the end of a flat array, sorted by leaf hash (their input order does not change the root),
  and node i has children 2i+1 and 2i+2; a proof lists siblings from the leaf up.
Pure: no I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Hash.keccak import _raw_keccak_lib as _lib  # type: ignore[attr-defined]
from Crypto.Util._raw_api import (  # type: ignore[attr-defined]  # c_ubyte is missing from its stub
    SmartPointer,
    VoidPointer,
    c_size_t,
    c_ubyte,
    create_string_buffer,
    get_raw_buffer,
)

from attest.errors import BatchError

# The ABI type of every leaf value; OpenZeppelin's dump names it in `leafEncoding`.
LEAF_ENCODING = ("bytes32",)


class _Keccak256:
    """keccak256 on one pycryptodome C state, reset for each hash: about 3 µs a call where eth_utils' keccak
    (a hash object built and checked per call) takes about 20, which made a 10,000-leaf tree's 30,000 hashes the
    bulk of building a batch. The state is not shared between threads: each has its own (`_hasher`)."""

    _N32, _PAD = c_size_t(32), c_ubyte(0x01)  # 32 bytes out; Keccak's original padding, not SHA-3's

    def __init__(self) -> None:
        state = VoidPointer()
        if _lib.keccak_init(state.address_of(), c_size_t(64), c_ubyte(24)):  # capacity 512 bits, 24 rounds
            raise BatchError("pycryptodome's keccak could not be initialised")
        self._state = SmartPointer(state.get(), _lib.keccak_destroy)  # freed with this object
        self._out = create_string_buffer(32, None)

    def __call__(self, data: bytes) -> bytes:
        state = self._state.get()
        _lib.keccak_reset(state)
        _lib.keccak_absorb(state, data, c_size_t(len(data)))
        _lib.keccak_squeeze(state, self._out, self._N32, self._PAD)
        return bytes(get_raw_buffer(self._out))


_local = threading.local()


def _hasher() -> _Keccak256:
    keccak: _Keccak256 | None = getattr(_local, "keccak", None)
    if keccak is None:
        keccak = _local.keccak = _Keccak256()
    return keccak


def leaf_hash(digest: bytes) -> bytes:
    """keccak256(bytes.concat(keccak256(abi.encode(digest)))): abi.encode of one bytes32 is the bytes."""
    _require_bytes32(digest, "a record digest")
    keccak = _hasher()
    return keccak(keccak(digest))


def node_hash(a: bytes, b: bytes) -> bytes:
    return _hasher()(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a leaf hash and its proof lead to (OpenZeppelin's MerkleProof.processProof)."""
    node = leaf
    for sibling in proof:
        node = node_hash(node, sibling)
    return node


def verify(digest: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` places `digest` under `root`, exactly as MerkleProof.verify decides on chain."""
    _require_bytes32(root, "a Merkle root")
    for sibling in proof:
        _require_bytes32(sibling, "a proof node")
    return process_proof(leaf_hash(digest), proof) == root


@dataclass(frozen=True)
class MerkleTree:
    """A built tree. `digests` keep their input order: `proof(i)` proves `digests[i]`."""

    digests: tuple[bytes, ...]
    nodes: tuple[bytes, ...]  # the flat array, root first
    tree_index: tuple[int, ...]  # where digests[i]'s leaf sits in `nodes`

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.digests):
            raise BatchError(f"leaf index {index} is outside the batch of {len(self.digests)} records")
        node, proof = self.tree_index[index], []
        while node > 0:
            proof.append(self.nodes[node - 1 if node % 2 == 0 else node + 1])
            node = (node - 1) // 2
        return proof


def build(digests: Sequence[bytes]) -> MerkleTree:
    """The tree over `digests` (input order kept for indices), or BatchError for none or a repeated one."""
    if not digests:
        raise BatchError("a batch needs at least one record; queue a record with `attest ask --batch` first")
    keccak = _hasher()
    for d in digests:
        _require_bytes32(d, "a record digest")
    leaves = [keccak(keccak(d)) for d in digests]
    if len(set(leaves)) != len(leaves):
        raise BatchError("a record digest appears twice in the batch; a record belongs to exactly one leaf")
    order = sorted(range(len(leaves)), key=leaves.__getitem__)
    size = 2 * len(leaves) - 1
    nodes: list[bytes] = [b""] * size
    tree_index = [0] * len(leaves)
    for position, value_index in enumerate(order):
        tree_index[value_index] = size - 1 - position
        nodes[size - 1 - position] = leaves[value_index]
    for i in range(size - 1 - len(leaves), -1, -1):
        a, b = nodes[2 * i + 1], nodes[2 * i + 2]
        nodes[i] = keccak(a + b if a <= b else b + a)  # node_hash, inlined: it runs N - 1 times
    return MerkleTree(tuple(digests), tuple(nodes), tuple(tree_index))


def _require_bytes32(value: bytes, what: str) -> None:
    if len(value) != 32:
        raise BatchError(f"{what} must be 32 bytes, got {len(value)}")
