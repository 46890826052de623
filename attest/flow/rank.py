"""`attest rank PAIR`: the configured account's signed preference between the two answers of a pair, pinned and
kept in the ledger; and the check of a preference record by CID (`attest verify PREFERENCE_CID`).

Checks come before anything is signed: the pair exists, both answer records decode and are pinned, the ranker
is the configured account, and it has not ranked the pair already (a changed mind is `--change`, a new record
naming the one it supersedes). Nothing is written when one fails. Then the preference is anchored on chain
(attest/flow/anchor.py) unless asked not to; an anchor that fails leaves the preference standing, pending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from attest.config import Config, load_config
from attest.errors import AttestError, PreferenceError, RecordError
from attest.flow.pairs import Pair, add_preference, current_preference, get_pair
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import Remotes, publish, read_anywhere
from attest.ipfs.store import ContentStore
from attest.ledger import Ledger
from attest.record.canonical import digest_hex
from attest.record.codec import decode_record
from attest.record.preference import (
    CHOICES,
    PreferenceRecord,
    decode_preference,
    encode_preference,
    preference_digest,
    sign_preference,
    validate_preference,
)

if TYPE_CHECKING:
    from attest.flow.anchor import AnchorResult


@dataclass(frozen=True)
class RankResult:
    preference_id: int
    cid: str
    record: PreferenceRecord
    pair: Pair
    anchor: AnchorResult | None = None  # its anchor, once sent (not with --no-anchor)
    anchor_error: str | None = None  # why the anchor failed: the preference stands, `attest rank anchor` retries


def load_pair(ref: str) -> Pair:
    with Ledger() as ledger:
        return get_pair(ledger, ref)


def rank(
    pair_ref: str,
    choice: str,
    *,
    reason: str | None = None,
    account: str | None = None,
    change: bool = False,
    anchor: bool = True,
    config: Config | None = None,
    passphrase_prompt: Callable[[str], str] | None = None,
) -> RankResult:
    from attest.accounts import load_account

    if choice not in CHOICES:
        raise PreferenceError(f"--prefer {choice!r} is not a choice; use 1, 2 or tie")
    config = config or load_config()
    network = config.resolve_network(config.defaults.network)
    configured = load_account(
        config.rank.account, network.name, default=config.defaults.account, prompt=passphrase_prompt
    )
    ranker = configured.account
    if account is not None:
        named = load_account(account, network.name, prompt=passphrase_prompt).account
        if named.address != ranker.address:
            raise PreferenceError(
                f"{account} ({named.address}) is not the account configured for ranking ({ranker.address}); "
                "rank with the configured one, or set [rank] account to it"
            )
    with Ledger() as ledger:
        pair = get_pair(ledger, pair_ref)
        refs = []
        for a in (pair.first, pair.second):
            if a.cid is None:
                raise PreferenceError(
                    f"attestation #{a.id} of pair #{pair.id} was never pinned; `attest resume {a.id}`"
                )
            try:
                decode_record(a.record)  # a tampered ledger row is refused before anything is signed
            except RecordError as err:
                raise PreferenceError(f"attestation #{a.id} of pair #{pair.id} cannot be ranked: {err}") from None
            refs.append({"cid": a.cid, "digest": a.digest})
        previous = current_preference(ledger, pair.id, ranker.address)
        if previous is not None and not change:
            raise PreferenceError(
                f"{ranker.address} already ranked pair #{pair.id} ({_shown(previous.choice)}, ipfs://{previous.cid}); "
                "a ranking is never edited: pass --change to supersede it with a new one"
            )
        record = sign_preference(
            validate_preference(
                {
                    "schema": "llm-attest/preference/v1",
                    "pair": refs,
                    "choice": choice,
                    "ranker": ranker.address,
                    "reason": reason.strip() if reason and reason.strip() else None,
                    "supersedes": None if previous is None else previous.cid,
                    "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
            ),
            ranker,
        )
        data = encode_preference(record)
        cid = _pin(data, config, pair.first.network)
        preference_id = add_preference(
            ledger, pair_id=pair.id, ranker=ranker.address, choice=choice, record=data, cid=cid,
            supersedes=record.supersedes,
        )  # fmt: skip
    result = RankResult(preference_id, cid, record, pair)
    if not anchor:
        return result
    from attest.flow.anchor import anchor_pending

    try:  # a one-leaf anchor now; signed by the ranker, like the preference
        anchored = anchor_pending([preference_id], config=config, prompt=passphrase_prompt)
    except AttestError as err:
        return replace(result, anchor_error=str(err))
    mine = [a for a in anchored if cid in a.cids]
    return replace(result, anchor=mine[0] if mine else None)


def _shown(choice: str) -> str:
    return "a tie" if choice == "tie" else f"answer {choice}"


def _pin(data: bytes, config: Config, network: str) -> str:
    """Pin locally and publish to the configured remotes (best effort: nothing is bonded on a preference)."""
    ipfs = config.ipfs_for(network)
    store = LocalStore()
    cid = store.put(data, cid_version=ipfs.cid_version)
    store.pin(cid)
    remotes = Remotes.from_config(ipfs)
    if remotes.pinners:
        publish([("the preference", cid, data)], remotes.pinners)
    return str(cid)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked
    detail: str


def read_preference(target: str, readers: Sequence[ContentStore], *, timeout_s: float) -> tuple[bytes, str] | None:
    """The bytes of `target` and their source when it is the CID of a preference record; None for anything else
    (an assertion id, an answer record's CID, content that cannot be read: `attest verify` judges those)."""
    try:
        data, source = read_anywhere(CID.parse(target), readers, timeout_s=timeout_s)
    except AttestError:
        return None
    return (data, source) if b'"schema":"llm-attest/preference/v1"' in data else None


def verify_preference(
    data: bytes,
    source: str,
    readers: Sequence[ContentStore],
    *,
    timeout_s: float,
    cid: str,
    network: str,
    receipt: bytes | None = None,
    config: Config | None = None,
) -> list[Check]:
    """The preference record and its signature, then both answer records: fetched by CID, decoded (schema and
    the asserter's signature) and their digests compared with the ones the ranker signed; then its anchor
    (attest/flow/anchor.py), from `receipt` (an anchor receipt's bytes), the ledger, or a log query."""
    checks: list[Check] = []
    try:
        record = decode_preference(data)
    except AttestError as err:
        return [Check("preference", False, str(err))]
    checks.append(Check("preference", True, f"{len(data)} bytes from {source}, {record.schema_}"))
    checks.append(Check("signature", True, f"signed by the ranker {record.ranker}"))
    checks.append(Check("choice", True, f"{_shown(record.choice)}" + (f": {record.reason}" if record.reason else "")))
    for n, ref in enumerate(record.pair, 1):
        try:
            answer_bytes, _ = read_anywhere(CID.parse(ref.cid), readers, timeout_s=timeout_s)
            answer = decode_record(answer_bytes)
        except AttestError as err:
            checks.append(Check(f"answer {n}", False, f"ipfs://{ref.cid}: {err}"))
            continue
        if digest_hex(answer) != ref.digest:
            checks.append(Check(f"answer {n}", False, f"digest {digest_hex(answer)} is not the ranked {ref.digest}"))
        else:
            checks.append(Check(f"answer {n}", True, f"ipfs://{ref.cid}, signed by {answer.asserter}"))
    checks.append(_anchor_check(record, cid, network, receipt, config or load_config()))
    return checks


def _anchor_check(record: PreferenceRecord, cid: str, network: str, receipt: bytes | None, config: Config) -> Check:
    from attest.flow.anchor import check_anchor, claim_from_ledger, claim_from_receipt

    digest = "0x" + preference_digest(record).hex()
    try:
        claim = claim_from_receipt(receipt, cid, digest) if receipt is not None else claim_from_ledger(cid)
        if isinstance(claim, str):
            return Check("anchor", None, claim)
        ok, detail = check_anchor(record, claim, network, config)
    except AttestError as err:
        return Check("anchor", False, f"cannot be checked: {err}")
    return Check("anchor", ok, detail)


def check_json(checks: Sequence[Check]) -> list[dict[str, object]]:
    return [asdict(c) for c in checks]
