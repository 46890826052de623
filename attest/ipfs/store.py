"""The one small interface every content store implements, and what a pin reports.

Every `get` returns bytes already verified against the CID (reading never trusts the network): a mismatch
raises `TamperedContent`, a CID nobody can provide raises `NotFound` after a bounded wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from attest.ipfs.cid import CID

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PinResult:
    store: str  # the store's name, e.g. "local", "kubo http://127.0.0.1:5001", "pinning https://api…"
    cid: str
    ok: bool  # pinned, or accepted and being pinned (status "queued"/"pinning")
    status: str  # "pinned" | "queued" | "pinning" | "failed"
    detail: str = ""  # why it failed, or the service's request id; never a token or key


class ContentStore(Protocol):
    name: str

    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        """Store `data` as a UnixFS file (Kubo's defaults) and return its CID, the one `ipfs add` gives."""
        ...

    def get(self, cid: CID, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
        """The file's bytes, every block verified against its CID."""
        ...

    def pin(self, cid: CID) -> PinResult:
        """Keep `cid` (and its whole DAG) from being garbage-collected."""
        ...

    def has(self, cid: CID) -> bool:
        """True when this store holds (or has pinned) `cid`; never waits on the network for long."""
        ...
