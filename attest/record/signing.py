"""The asserter's signature: EIP-191 personal_sign of the record's 32-byte digest.

personal_sign keeps the check open to anyone: a wallet or `cast wallet verify` given the digest as raw bytes
recovers the same address. Only one encoding of a signature is accepted (v of 27 or 28, low s, per EIP-2), so
a signed record has exactly one set of pinned bytes.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature as _KeysBadSignature
from eth_utils.exceptions import ValidationError as _EthValidationError

from attest.errors import BadSignature
from attest.record.canonical import digest
from attest.record.model import AttestationRecord

# Order of the secp256k1 group.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def signable(record: AttestationRecord) -> SignableMessage:
    """The EIP-191 (version E) message over the raw 32 digest bytes."""
    return encode_defunct(primitive=digest(record))


def sign_record(record: AttestationRecord, account: LocalAccount) -> AttestationRecord:
    """A copy of `record` signed by `account`, which must be the record's asserter."""
    if account.address != record.asserter:
        raise BadSignature(
            f"the signing key belongs to {account.address}, not the record's asserter {record.asserter}; "
            "sign with the asserter's key or set asserter to the signing account"
        )
    signature = bytes(account.sign_message(signable(record)).signature)
    return record.model_copy(update={"signature": "0x" + signature.hex()})


def recover_signer(record: AttestationRecord) -> str:
    """The checksummed address whose key made `record.signature`, or BadSignature when there is none."""
    if record.signature is None:
        raise BadSignature("record is unsigned; sign it with the asserter's key before writing or asserting it")
    return recover_digest_signer(digest(record), record.signature)


def sign_digest(value: bytes, account: LocalAccount) -> str:
    """0x-hex EIP-191 personal_sign of 32 raw bytes (a record digest, a batch root)."""
    return "0x" + bytes(account.sign_message(encode_defunct(primitive=value)).signature).hex()


def recover_digest_signer(value: bytes, signature: str) -> str:
    """The checksummed address whose key signed the 32 raw bytes `value` (EIP-191), in canonical form only."""
    raw = bytes.fromhex(signature[2:])
    require_canonical_encoding(raw)
    try:
        return str(Account.recover_message(encode_defunct(primitive=value), signature=raw))
    except (ValueError, _KeysBadSignature, _EthValidationError):
        raise BadSignature("record signature is not a valid secp256k1 signature; do not trust the record") from None


def verify_record(record: AttestationRecord) -> str:
    """Raise BadSignature unless the signature recovers to `record.asserter`; return that address."""
    signer = recover_signer(record)
    if signer != record.asserter:
        raise BadSignature(
            f"record signature recovers to {signer}, not the asserter {record.asserter}: the record was changed "
            "after signing or signed by another key. Do not trust it."
        )
    return signer


def require_canonical_encoding(raw: bytes) -> None:
    """One encoding per signature (shared with preference records), so signed bytes are unique."""
    if len(raw) != 65:
        raise BadSignature(f"record signature is {len(raw)} bytes, not 65 (r, s, v); re-sign the record")
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v not in (27, 28) or not 0 < r < _SECP256K1_N or not 0 < s <= _SECP256K1_N // 2:
        raise BadSignature(
            "record signature is not in canonical form (v must be 27 or 28, s in the lower half of the curve "
            "order); re-sign the record"
        )
