"""Signed ingest requests: a contributor's EIP-712 typed message "ingest CID into the knowledge base governed by
registry R on chain C", with a nonce and an expiry (the AWS series' MetaMask message; `attest kb sync` is its
authorizer). Pure: building, signing with a key passed in, parsing untrusted JSON, recovering the signer.

The knowledge base is named by its governing KnowledgeRegistry (the domain's `verifyingContract`) and chain id,
so a request signed for one registry or chain never authorizes an ingest under another. The nonce is random
(256 bits, as in EIP-3009), not a counter: a contributor signs requests offline, in any order, and a syncing
KB remembers every nonce it accepted, so each request is used once.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from attest.errors import IngestRequestError, InvalidCid
from attest.ipfs.cid import CID
from attest.jsonsafe import nested_deeper_than, strict_loads

REQUEST_SCHEMA = "llm-attest/kb-ingest-request/v1"
DOMAIN_NAME = "llm-attest KnowledgeRegistry"
DOMAIN_VERSION = "1"
PRIMARY_TYPE = "IngestRequest"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    PRIMARY_TYPE: [
        {"name": "cid", "type": "string"},
        {"name": "contributor", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
}
MAX_REQUEST_BYTES = 4096
_SIGNATURE = re.compile(r"0x[0-9a-f]{130}")
_KEYS = ("schema", "chain_id", "registry", "cid", "contributor", "nonce", "expiry", "signature")


@dataclass(frozen=True)
class IngestRequest:
    """One signed request. `nonce` and `expiry` (unix seconds) are integers; `signature` is 0x + 130 hex."""

    chain_id: int
    registry: str  # EIP-55: the KnowledgeRegistry, the domain's verifyingContract
    cid: str  # canonical CID string
    contributor: str  # EIP-55
    nonce: int
    expiry: int
    signature: str

    def to_json(self) -> dict[str, Any]:
        # Integers as decimal strings: a 256-bit nonce is beyond what JavaScript's JSON numbers hold exactly.
        return {
            "schema": REQUEST_SCHEMA,
            "chain_id": str(self.chain_id),
            "registry": self.registry,
            "cid": self.cid,
            "contributor": self.contributor,
            "nonce": str(self.nonce),
            "expiry": str(self.expiry),
            "signature": self.signature,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


def typed_data(chain_id: int, registry: str, cid: str, contributor: str, nonce: int, expiry: int) -> dict[str, Any]:
    """The EIP-712 message a wallet shows and signs (`eth_signTypedData_v4` takes exactly this)."""
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": registry,
        },
        "message": {"cid": cid, "contributor": contributor, "nonce": nonce, "expiry": expiry},
    }


def sign_request(
    account: LocalAccount, *, chain_id: int, registry: str, cid: str, expiry: int, nonce: int | None = None
) -> IngestRequest:
    """A request by `account` to ingest `cid` (checked, canonical) until `expiry`, with a fresh random nonce."""
    cid = _cid(cid)
    registry = _address(registry, "registry")
    nonce = secrets.randbits(256) if nonce is None else nonce
    message = encode_typed_data(full_message=typed_data(chain_id, registry, cid, account.address, nonce, expiry))
    signature = "0x" + bytes(account.sign_message(message).signature).hex()
    return IngestRequest(chain_id, registry, cid, account.address, nonce, expiry, signature)


def recover_signer(request: IngestRequest) -> str:
    """The address whose key signed this request's typed data (EIP-55)."""
    message = encode_typed_data(
        full_message=typed_data(
            request.chain_id, request.registry, request.cid, request.contributor, request.nonce, request.expiry
        )
    )
    try:
        return str(Account.recover_message(message, signature=bytes.fromhex(request.signature[2:])))
    except Exception:  # eth-keys raises several types for a signature that is no point on the curve
        raise IngestRequestError(f"the request for {request.cid} has a signature that recovers no address") from None


def check_request(request: IngestRequest, *, chain_id: int, registry: str, now: int) -> None:
    """Refuse (IngestRequestError, one line) a request for another chain or registry, an expired one, or one whose
    signature does not recover to its contributor. Approval and replay are the syncing KB's to check."""
    what = f"the request for {request.cid} by {request.contributor}"
    if request.chain_id != chain_id:
        raise IngestRequestError(f"{what} is for chain {request.chain_id}, not {chain_id}; sign it for this network")
    if request.registry != _address(registry, "registry"):
        raise IngestRequestError(
            f"{what} is for the registry {request.registry}, not {registry}; sign it for this knowledge base"
        )
    if request.expiry <= now:
        raise IngestRequestError(f"{what} expired at {request.expiry} (now {now}); ask the contributor to sign anew")
    signer = recover_signer(request)
    if signer != request.contributor:
        raise IngestRequestError(f"{what} is signed by {signer}, not by its contributor: it is forged; refused")


def parse_request(data: bytes, where: str = "the request") -> IngestRequest:
    """A request from untrusted JSON bytes, every field checked, or IngestRequestError."""
    if len(data) > MAX_REQUEST_BYTES:
        raise IngestRequestError(f"{where} is {len(data):,} bytes; an ingest request is under {MAX_REQUEST_BYTES:,}")
    try:
        text = data.decode("utf-8")
        if nested_deeper_than(text, 2):
            raise ValueError("nested too deeply")
        value = strict_loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        why = str(err)[:80]
        raise IngestRequestError(f"{where} is not JSON ({why}); pass what `attest kb request` wrote") from None
    if not isinstance(value, dict) or sorted(value) != sorted(_KEYS):
        raise IngestRequestError(f"{where} is not an ingest request: it needs exactly the keys {list(_KEYS)}")
    if not all(isinstance(v, str) for v in value.values()):
        raise IngestRequestError(f"{where}: every value of an ingest request is a string")
    if value["schema"] != REQUEST_SCHEMA:
        raise IngestRequestError(f"{where} has schema {value['schema'][:60]!r}, not {REQUEST_SCHEMA}")
    if not _SIGNATURE.fullmatch(value["signature"]):
        raise IngestRequestError(f"{where}: the signature is not 0x and 130 lowercase hex digits")
    return IngestRequest(
        chain_id=_uint(value["chain_id"], "chain_id", where),
        registry=_address(value["registry"], "registry"),
        cid=_cid(value["cid"], canonical=True),
        contributor=_address(value["contributor"], "contributor"),
        nonce=_uint(value["nonce"], "nonce", where),
        expiry=_uint(value["expiry"], "expiry", where),
        signature=value["signature"],
    )


def _uint(text: str, key: str, where: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 78 or int(text) >= 1 << 256:
        raise IngestRequestError(f"{where}: {key} is not a decimal uint256")
    return int(text)


def _address(text: str, what: str) -> str:
    if not is_address(text):
        raise IngestRequestError(f"the {what} {text[:60]!r} is not an address")
    return to_checksum_address(text)


def _cid(text: str, *, canonical: bool = False) -> str:
    try:
        parsed = str(CID.parse(text))
    except InvalidCid as err:
        raise IngestRequestError(f"{text[:80]!r} is not a CID ({err})") from None
    if canonical and parsed != text:
        # The signature covers the CID string: one spelling per CID, so nobody re-spells a signed request.
        raise IngestRequestError(f"the CID {text[:80]!r} is not in canonical form ({parsed})")
    return parsed
