"""Everything the disputer's state keeps about one assertion, as plain JSON (`disputer status ASSERTION_ID`).

Reads the store only: no node is needed to show what the daemon saw, decided and sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from attest.claim import parse_claim
from attest.errors import ClaimError
from disputer.store import Decision, DisputerStore


def hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def claim_facts(claim: bytes) -> dict[str, Any]:
    try:
        parsed = parse_claim(claim)
    except ClaimError as err:
        return {"bytes": len(claim), "llm_attest": False, "error": str(err)}
    return {"bytes": len(claim), "llm_attest": True, "title": parsed.title, "record": parsed.record_uri,
            "digest": parsed.digest, "asserter": parsed.asserter, "rules": f"ipfs://{parsed.rules_cid}"}  # fmt: skip


def decision_facts(d: Decision) -> dict[str, Any]:
    return {"action": d.action, "reason": d.reason, "score": d.score, "calibrated": d.calibrated,
            "rationale": d.rationale, "judge": d.judge, "dry_run": d.dry_run, "at": d.created_at,
            "failed_checks": list(d.checks.get("failed", []))}  # fmt: skip


def assertion_status(store: DisputerStore, assertion_id: bytes) -> dict[str, Any] | None:
    """Plain JSON of everything the state keeps about one assertion, or None when it is not stored. Vote salts
    are left out: until the reveal they are the vote's only secret."""
    a = store.get(assertion_id)
    if a is None:
        return None
    decision = store.decision(assertion_id)
    expires = datetime.fromtimestamp(min(a.expiration_time, 253402300799), UTC).isoformat().replace("+00:00", "Z")
    return {
        "assertion": hex_or_none(a.assertion_id), "chain_id": a.chain_id, "oov3": a.oov3, "status": a.status,
        "ours": a.is_ours, "block": a.block_number, "tx": hex_or_none(a.tx_hash), "log_index": a.log_index,
        "asserter": a.asserter, "caller": a.caller, "callback_recipient": a.callback_recipient,
        "escalation_manager": a.escalation_manager, "expiration_time": a.expiration_time, "expires_at": expires,
        "currency": a.currency, "bond": str(a.bond), "identifier": a.identifier.rstrip(b"\0").decode("latin-1"),
        "domain_id": hex_or_none(a.domain_id), "claim": claim_facts(a.claim), "seen_at": a.seen_at,
        "disputed_by": a.disputed_by, "disputed_tx": hex_or_none(a.disputed_tx), "disputed_block": a.disputed_block,
        "settled_resolution": a.settled_resolution, "settled_tx": hex_or_none(a.settled_tx),
        "settled_block": a.settled_block,
        "decision": None if decision is None else decision_facts(decision),
        "superseded_decisions": [decision_facts(d) for d in store.superseded_decisions(assertion_id)],
        "txs": [{"kind": t.kind, "status": t.status, "nonce": t.nonce, "tx": hex_or_none(t.tx_hash), "sender": t.sender,
                 "attempts": t.attempts, "error": t.error, "updated_at": t.updated_at}
                for t in store.txs_for(assertion_id)],
        "votes": [{"round": v.round_id, "phase": v.phase, "price": str(v.price),
                   "committed_tx": hex_or_none(v.committed_tx), "revealed_tx": hex_or_none(v.revealed_tx),
                   "updated_at": v.updated_at}
                  for v in store.votes_for(assertion_id)],
    }  # fmt: skip
