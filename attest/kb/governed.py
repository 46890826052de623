"""A governed knowledge base: the KnowledgeRegistry whose approved set it holds, the block that set was read at,
the signed request each governed document entered by, the request nonces used; and the corpus manifest, which
names the governance when there is one (v2) and is byte for byte the v1 manifest otherwise, so the corpus CID of
a KB that is not governed never changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from attest.errors import AttestError
from attest.jsonsafe import nested_deeper_than
from attest.kb.chunking import CHUNKER, ChunkParams
from attest.kb.request import IngestRequest
from attest.storage import utc_now

MANIFEST_SCHEMA = "llm-attest/kb-manifest/v1"
MANIFEST_SCHEMA_V2 = "llm-attest/kb-manifest/v2"  # v1 + `governance` and each document's contributor
_KEYS = ("governed_registry", "governed_chain_id", "governed_block")


@dataclass(frozen=True)
class Governance:
    registry: str  # EIP-55 KnowledgeRegistry address
    chain_id: int
    block: int  # the block at which the approved set the KB holds was read

    def as_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "chain_id": self.chain_id, "block": self.block}


# Was `cid` approved in the governance's registry at its block? (KnowledgeRegistry.wasApprovedAt, on its chain)
ApprovedAt = Callable[[Governance, str], bool]


def governance(db: sqlite3.Connection) -> Governance | None:
    stored = dict(db.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", _KEYS))
    if len(stored) != len(_KEYS):
        return None
    return Governance(stored[_KEYS[0]], int(stored[_KEYS[1]]), int(stored[_KEYS[2]]))


def set_governance(db: sqlite3.Connection, gov: Governance) -> None:
    values = (gov.registry, str(gov.chain_id), str(gov.block))
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(zip(_KEYS, values, strict=True)))


def contributors(db: sqlite3.Connection) -> dict[str, str]:
    """doc_cid -> the contributor whose signed request brought it in."""
    return dict(db.execute("SELECT doc_cid, contributor FROM governed_documents"))


def nonce_used(db: sqlite3.Connection, contributor: str, nonce: int) -> str | None:
    """The CID a (contributor, nonce) was used for, or None."""
    row = db.execute(
        "SELECT doc_cid FROM used_nonces WHERE contributor = ? AND nonce = ?", (contributor, str(nonce))
    ).fetchone()
    return None if row is None else str(row[0])


def record_request(db: sqlite3.Connection, request: IngestRequest) -> None:
    now = utc_now()
    db.execute(
        "INSERT INTO used_nonces VALUES (?, ?, ?, ?)", (request.contributor, str(request.nonce), request.cid, now)
    )
    db.execute(
        "INSERT OR REPLACE INTO governed_documents VALUES (?, ?, ?, ?)",
        (request.cid, request.contributor, json.dumps(request.to_json()), now),
    )


def forget_document(db: sqlite3.Connection, doc_cid: str) -> None:
    db.execute("DELETE FROM governed_documents WHERE doc_cid = ?", (doc_cid,))


def build_manifest(db: sqlite3.Connection, params: ChunkParams) -> dict[str, Any]:
    """What names this snapshot: the chunker and its parameters, every document with its CID, and (v2) the
    governing registry, chain and block, and each document's contributor."""
    rows = db.execute(
        "SELECT d.source, d.doc_cid, d.media_type, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
        "FROM documents d ORDER BY d.source"
    )
    documents = [
        {"source": source, "doc_cid": doc_cid, "media_type": media_type, "chunks": chunks}
        for source, doc_cid, media_type, chunks in rows
    ]
    chunking = {"chunker": CHUNKER, "max_chars": params.max_chars, "overlap_chars": params.overlap_chars}
    gov = governance(db)
    if gov is None:
        return {"schema": MANIFEST_SCHEMA, "chunking": chunking, "documents": documents}
    by = contributors(db)
    return {
        "schema": MANIFEST_SCHEMA_V2,
        "chunking": chunking,
        "documents": [{**d, "contributor": by.get(str(d["doc_cid"]), "")} for d in documents],
        "governance": gov.as_dict(),
    }


@dataclass(frozen=True)
class ParsedManifest:
    chunks: dict[str, int]  # doc_cid -> number of chunks
    governance: Governance | None


def parse_manifest(data: bytes) -> ParsedManifest:
    """A v1 or v2 corpus manifest from untrusted bytes (ValueError says why it is not one)."""
    try:
        text = data.decode("utf-8")
        if nested_deeper_than(text, 8):
            raise ValueError("nested too deeply")
        value = json.loads(text)
        if value["schema"] not in (MANIFEST_SCHEMA, MANIFEST_SCHEMA_V2):
            raise ValueError(f"its schema is neither {MANIFEST_SCHEMA} nor {MANIFEST_SCHEMA_V2}")
        chunks = {str(d["doc_cid"]): int(d["chunks"]) for d in value["documents"]}
        gov = None
        if value["schema"] == MANIFEST_SCHEMA_V2:
            g = value["governance"]
            if not isinstance(g["registry"], str) or not all(type(g[k]) is int for k in ("chain_id", "block")):
                raise ValueError("its governance is not a registry address, a chain id and a block")
            gov = Governance(g["registry"], g["chain_id"], g["block"])
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise ValueError(f"not a readable corpus manifest ({err})") from None
    return ParsedManifest(chunks, gov)


def governed_context(
    doc_cids: Sequence[str], manifest: ParsedManifest, approved_at: ApprovedAt | None
) -> tuple[bool | None, str]:
    """(ok, detail) of the governed-context check: every cited document was approved in the manifest's registry at
    its block. None (not checked) when the corpus is not governed or its chain cannot be asked."""
    gov = manifest.governance
    if gov is None:
        return None, "the corpus manifest names no governing registry"
    where = f"the KnowledgeRegistry {gov.registry} on chain {gov.chain_id} at block {gov.block}"
    if approved_at is None:
        return None, f"not connected to chain {gov.chain_id} to ask {where}"
    cited = list(dict.fromkeys(doc_cids))
    try:
        missing = [cid for cid in cited if not approved_at(gov, cid)]
    except AttestError as err:
        return None, f"could not ask {where}: {err}"
    if missing:
        return False, f"not approved by {where}: {', '.join(missing)}"
    return True, f"all {len(cited)} cited document(s) were approved by {where}"
