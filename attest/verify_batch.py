"""`attest verify` for Merkle batches: a record inside its batch, or a whole batch assertion, checked as the v2
rules tell a voter (the manifest, its root and signature, each record, its inclusion proof, the assertion)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from web3 import Web3

from attest.batch import merkle
from attest.batch.claim import BatchClaim, parse_batch_claim
from attest.batch.manifest import Manifest, decode_manifest
from attest.chain.artifacts import shipped
from attest.errors import AttestError, BatchError, ClaimError, VerifyError
from attest.ipfs.cid import CID
from attest.ipfs.remotes import read_anywhere
from attest.record.canonical import digest_hex
from attest.record.codec import decode_record
from attest.verify import Check, find_assertion

if TYPE_CHECKING:
    from attest.chain.oov3 import AssertionMade
    from attest.connect import ChainContext
    from attest.ipfs.store import ContentStore

FETCH_CONCURRENCY = 8  # records fetched at once: bounded so a 10,000-record batch does not flood a gateway
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class BatchReport:
    target: str
    manifest_cid: str | None
    assertion_id: str | None
    checks: tuple[Check, ...]
    failing: tuple[tuple[int, str, str], ...] = ()  # (leaf index, record CID, why) of each failing record
    records: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks) and not self.failing


def batch_claim_of(made: AssertionMade) -> BatchClaim | None:
    """The batch claim of an assertion, or None when it is not one (a single-record claim)."""
    try:
        return parse_batch_claim(made.claim)
    except ClaimError:
        return None


def verify_record_in_batch(
    record_cid: str,
    batch: str,
    ctx: ChainContext | None,
    readers: Sequence[ContentStore],
    *,
    timeout_s: float,
) -> BatchReport:
    """A record inside the batch named by `batch` (its manifest CID, or its assertion id)."""
    made, manifest_cid, checks = _batch_target(batch, ctx)
    manifest, manifest_check = _manifest(manifest_cid, readers, timeout_s)
    checks.append(manifest_check)
    if manifest is None:
        return BatchReport(record_cid, manifest_cid, _id(made), tuple(checks))
    index = next((i for i, leaf in enumerate(manifest.leaves) if leaf.cid == record_cid), None)
    if index is None:
        checks.append(Check("membership", False, f"{record_cid} is not listed in the manifest {manifest_cid}"))
        return BatchReport(record_cid, manifest_cid, _id(made), tuple(checks))
    tree = manifest.tree_of()
    why = check_member(manifest, index, tree, _fetcher(readers, timeout_s))
    proof = tree.proof(index)
    checks.append(Check("record", why is None, why or f"leaf {index}: well formed, signed by {manifest.asserter}"))
    checks.append(Check("proof", True, f"leaf {index} of {manifest.count}, {len(proof)} proof nodes to the root"))
    checks += assertion_checks(made, manifest, manifest_cid, ctx)
    if made is not None and ctx is not None and ctx.registry is not None:
        address = Web3.to_checksum_address(ctx.registry)
        registry = ctx.w3.eth.contract(address=address, abi=shipped("AttestationRegistry").abi)
        digest = bytes.fromhex(manifest.leaves[index].digest[2:])
        onchain = bool(registry.functions.isAttestedInBatch(digest, bytes.fromhex(manifest.root[2:]), proof).call())
        checks.append(
            Check("on chain", True if onchain else None, "isAttestedInBatch is true" if onchain else "not attested yet")
        )
    return BatchReport(record_cid, manifest_cid, _id(made), tuple(checks))


def verify_batch(
    made: AssertionMade,
    ctx: ChainContext,
    readers: Sequence[ContentStore],
    *,
    timeout_s: float,
    progress: Callable[[int], None] = lambda done: None,
) -> BatchReport:
    """Every record of a batch assertion, fetched with bounded concurrency; `progress(n)` after each record."""
    claim = batch_claim_of(made)
    assert claim is not None
    manifest, manifest_check = _manifest(claim.manifest_cid, readers, timeout_s)
    checks = [Check("assertion", True, f"0x{made.assertion_id.hex()} in block {made.block_number}"), manifest_check]
    if manifest is None:
        return BatchReport(_id(made) or "", claim.manifest_cid, _id(made), tuple(checks))
    checks += assertion_checks(made, manifest, claim.manifest_cid, ctx)
    tree = manifest.tree_of()
    fetch = _fetcher(readers, timeout_s)
    failing: list[tuple[int, str, str]] = []
    with ThreadPoolExecutor(max_workers=FETCH_CONCURRENCY) as pool:
        results = pool.map(lambda i: check_member(manifest, i, tree, fetch), range(manifest.count))
        for index, why in enumerate(results):
            if why is not None:
                failing.append((index, manifest.leaves[index].cid, why))
            progress(1)
    return BatchReport(_id(made) or "", claim.manifest_cid, _id(made), tuple(checks), tuple(failing), manifest.count)


def _batch_target(batch: str, ctx: ChainContext | None) -> tuple[AssertionMade | None, str, list[Check]]:
    if batch.lower().startswith("0x"):
        if ctx is None:
            raise VerifyError(f"{batch} is an assertion id; verifying it needs a network (--network)")
        made = find_assertion(ctx, bytes.fromhex(batch[2:]))
        if made is None:
            raise VerifyError(f"there is no assertion {batch} on {ctx.network.name}; check the id and --network")
        claim = batch_claim_of(made)
        if claim is None:
            raise VerifyError(f"assertion {batch} is not a batch assertion; verify its record without --batch")
        return made, claim.manifest_cid, [Check("assertion", True, f"{batch} in block {made.block_number}")]
    try:
        manifest_cid = str(CID.parse(batch))
    except AttestError:
        raise VerifyError(f"--batch {batch[:80]} is neither a manifest CID nor an assertion id") from None
    return None, manifest_cid, []


def _manifest(cid: str, readers: Sequence[ContentStore], timeout_s: float) -> tuple[Manifest | None, Check]:
    try:
        data, _ = read_anywhere(CID.parse(cid), readers, timeout_s=timeout_s)
        manifest = decode_manifest(data)
    except AttestError as err:
        return None, Check("manifest", False, str(err))
    return manifest, Check(
        "manifest", True, f"{manifest.count} records, root {manifest.root}, signed by {manifest.asserter}"
    )


def assertion_checks(
    made: AssertionMade | None, manifest: Manifest, manifest_cid: str, ctx: ChainContext | None
) -> list[Check]:
    if made is None:
        return [Check("claim", None, "no assertion named (--batch ASSERTION_ID checks it)")]
    claim = batch_claim_of(made)
    facts = None if claim is None else (claim.manifest_cid, claim.root, claim.count, claim.asserter)
    expected = (manifest_cid, manifest.root, manifest.count, manifest.asserter)
    problems = []
    if facts != expected:
        problems.append("the claim does not name this manifest, root, count and asserter")
    if "0x" + made.domain_id.hex() != manifest.root:
        problems.append("the assertion's domainId is not the manifest root")
    if made.asserter != manifest.asserter:
        problems.append(f"the assertion's asserter is {made.asserter}, not {manifest.asserter}")
    if made.escalation_manager != ZERO_ADDRESS:
        problems.append("the assertion has an escalation manager, which the registry does not count")
    if ctx is not None and ctx.registry is not None and made.callback_recipient != ctx.registry:
        problems.append(f"the callback recipient is {made.callback_recipient}, not the registry {ctx.registry}")
    return [Check("claim", not problems, "; ".join(problems) or "names the manifest, root, count and asserter")]


def check_member(manifest: Manifest, index: int, tree: merkle.MerkleTree, fetch: Callable[[str], bytes]) -> str | None:
    """Why leaf `index` fails (v2 statement 4 as far as a program can check it), or None."""
    leaf = manifest.leaves[index]
    try:
        record = decode_record(fetch(leaf.cid))
    except AttestError as err:
        return str(err)
    if digest_hex(record) != leaf.digest:
        return f"its digest is {digest_hex(record)}, not the listed {leaf.digest}"
    if record.asserter != manifest.asserter:
        return f"it is signed by {record.asserter}, not the batch asserter {manifest.asserter}"
    try:
        if not merkle.verify(bytes.fromhex(leaf.digest[2:]), tree.proof(index), bytes.fromhex(manifest.root[2:])):
            return "its inclusion proof does not lead to the root"
    except BatchError as err:
        return str(err)
    return None


def _fetcher(readers: Sequence[ContentStore], timeout_s: float) -> Callable[[str], bytes]:
    def fetch(cid: str) -> bytes:
        return read_anywhere(CID.parse(cid), readers, timeout_s=timeout_s)[0]

    return fetch


def _id(made: AssertionMade | None) -> str | None:
    return None if made is None else "0x" + made.assertion_id.hex()
