"""The evidence of a batch dispute: the records that fail it and why, so voters check those instead of all N.

The document is canonical JSON (RFC 8785) built only from the decision and the manifest, with no clock in it:
built again after a restart it has the same bytes, so the same CID, and the one announcement per assertion
names the same document. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attest.record.canonical import canonicalize

EVIDENCE_SCHEMA = "llm-attest/batch-evidence/v1"


def failing_records(checks: dict[str, Any], record_cids: Sequence[str], threshold: float) -> list[dict[str, Any]]:
    """Each failing record (leaf index, record CID, reason, score), by leaf index: a failed deterministic check
    (no score), or a judged score below the threshold."""
    out: dict[int, dict[str, Any]] = {}
    for failed in checks.get("failing", []):
        index = int(failed["leaf_index"])
        out[index] = {"leaf_index": index, "record": failed["record"], "reason": failed["why"], "score": None}
    for key, score in checks.get("scores", {}).items():
        index = int(key)
        if index not in out and score is not None and score < threshold:
            reason = f"judged score {score:.3f} is below the threshold {threshold:.3f}"
            out[index] = {"leaf_index": index, "record": record_cids[index], "reason": reason, "score": score}
    return [out[i] for i in sorted(out)]


def evidence_document(
    assertion_id: bytes, checks: dict[str, Any], record_cids: Sequence[str], threshold: float, reason: str
) -> bytes:
    """The pinned document a batch dispute's Evidence event points to."""
    batch = checks["batch"]
    return canonicalize(
        {
            "schema": EVIDENCE_SCHEMA,
            "assertion_id": "0x" + assertion_id.hex(),
            "batch": {"manifest": f"ipfs://{batch['manifest']}", "root": batch["root"], "count": batch["count"]},
            "decision": reason,
            "threshold": threshold,
            "failing": failing_records(checks, record_cids, threshold),
        }
    )
