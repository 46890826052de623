"""One root for every failure a user should see; each message says what to do next.

The CLI turns an `AttestError` into a one-line message and a non-zero exit; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class AttestError(Exception):
    """A failure the user can act on. `str(err)` is the whole message."""


class ToolchainMissing(AttestError, FileNotFoundError):
    """The npm toolchain (anvil, solcjs, UMA artifacts) is not installed."""


class UnknownNetwork(AttestError, LookupError):
    """A network name or chain id that the registry does not know."""


class DevnetError(AttestError):
    """The local devnet cannot be started, stopped or read."""


class PortBusy(DevnetError):
    """Something that is not our devnet holds the port."""


class CorruptState(DevnetError):
    """A devnet state or deployment file cannot be read back."""


class ChainError(AttestError):
    """A chain call or transaction failed."""


class TransactionRejected(ChainError):
    """A transaction would revert; it was checked with a static call and not sent."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} would revert: {reason}. Nothing was sent.")
        self.action = action
        self.reason = reason
