"""One root for every failure a user should see; each message says what to do next.

The CLI turns an `AttestError` into a one-line message and a non-zero exit; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class AttestError(Exception):
    """A failure the user can act on. `str(err)` is the whole message."""


# -- setup and configuration ---------------------------------------------------------------------------------
class ToolchainMissing(AttestError, FileNotFoundError):
    """The npm toolchain (anvil, solcjs, UMA artifacts) is not installed."""


class ConfigError(AttestError):
    """A configuration file or value that cannot be used."""


class NotReady(AttestError):
    """A network, account or service not ready for money to move (what `attest doctor` checks): the message names
    each failed check and its fix."""


class HomeNotWritable(ConfigError):
    """ATTEST_HOME cannot be written (a read-only mount or copy) and the command writes there."""


class UnknownNetwork(AttestError, LookupError):
    """A network name or chain id that the registry does not know."""


# -- accounts ------------------------------------------------------------------------------------------------
class AccountError(AttestError):
    """No usable signing account: unknown alias, wrong passphrase, refused dev key, malformed key or keystore.
    Messages name the alias or source, never key material."""


# -- the local ledger ----------------------------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what it did to the job it stopped (one line). Not an AttestError: it ends the command as an
    interrupt (exit code 130), not as a failure."""


class LedgerError(AttestError):
    """The local ledger of attestations cannot be read or written, or names no such attestation."""


# -- chain and transactions ----------------------------------------------------------------------------------
class ChainError(AttestError):
    """A chain call or transaction failed."""


class TransactionRejected(ChainError):
    """A transaction would revert; it was checked with a static call and not sent."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} would revert: {reason}. Nothing was sent.")
        self.action = action
        self.reason = reason


class NonceTaken(ChainError):
    """A signed transaction's nonce was used by another transaction of the account (another machine or wallet
    signing with it): those bytes can never be mined, and the outbox signs the intent anew."""


class RpcUnavailable(ChainError):
    """The RPC endpoint kept failing (5xx, timeouts, dropped connections, transient JSON-RPC errors) after the
    bounded retries. Whether a transaction sent meanwhile reached the chain is unknown: the outbox finds out.
    `problem` is the failure alone, for a reader other than `attest`'s user (the disputer's log)."""

    def __init__(self, problem: str, next_step: str = "check the node, then `attest resume`") -> None:
        super().__init__(f"{problem}; {next_step}")
        self.problem = problem


class FeeCapExceeded(ChainError):
    """The network asks more per gas than the configured cap (`max_fee_gwei`): nothing was signed, or a stuck
    transaction could not be replaced with the minimum bump under the cap."""


class BondError(ChainError):
    """A bond cannot be posted: below the oracle's minimum, more than the balance, or a currency not allowed."""


class RegistryError(ChainError):
    """Our AttestationRegistry is missing, not for this OOv3, already deployed, or would not count an assertion."""


# -- the local devnet ----------------------------------------------------------------------------------------
class DevnetError(AttestError):
    """The local devnet cannot be started, stopped or read."""


class PortBusy(DevnetError):
    """Something that is not our devnet holds the port."""


class CorruptState(DevnetError):
    """A devnet state or deployment file cannot be read back."""


# -- content addressing and IPFS stores ----------------------------------------------------------------------
class InvalidCid(AttestError, ValueError):
    """A string or bytes that is not a CID we can read."""


class CarError(AttestError, ValueError):
    """A CAR file that is truncated, corrupt, or holds blocks that do not match their CIDs."""


class CarBlockMismatch(CarError):
    """A CAR section whose bytes do not hash to the CID it is filed under."""

    def __init__(self, message: str, cid: str) -> None:
        super().__init__(message)
        self.cid = cid


class StoreError(AttestError):
    """A content store (local, Kubo RPC, pinning service, gateway) failed."""


class NotFound(StoreError, LookupError):
    """A CID that no source could provide within the time allowed."""

    def __init__(self, cid: str, where: str, timeout_s: float | None = None) -> None:
        waited = f" within {timeout_s:g}s" if timeout_s is not None else ""
        super().__init__(f"{cid} was not found at {where}{waited}; check the CID or pin it where it can be fetched")
        self.cid = cid
        self.where = where


class TamperedContent(StoreError):
    """Bytes that do not hash to the CID they were requested by."""

    def __init__(self, cid: str, source: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{source} returned bytes that do not match {cid}{extra}; nothing was kept. Use another source."
        )
        self.cid = cid
        self.source = source


class NotPublished(StoreError):
    """Content a voter needs (record, rules, cited documents, corpus manifest) is not confirmed on every remote."""


class MalformedBlock(StoreError, ValueError):
    """A block that matches its CID but does not decode as the dag-pb / UnixFS it claims to be."""


class ContentTooLarge(AttestError, ValueError):
    """More verified bytes of a CID arrived than the reader allows: the content itself is that large (every byte
    was checked against its CID), so no other source can serve it smaller. Not a StoreError on purpose."""


# -- knowledge base ------------------------------------------------------------------------------------------
class KbError(AttestError):
    """The knowledge base cannot ingest, find or read something."""


class IngestError(KbError):
    """A document that cannot be ingested (binary, empty, undecodable, not found); the KB is left as it was."""


# -- prompts and models --------------------------------------------------------------------------------------
class PromptError(AttestError, LookupError):
    """An unknown prompt template or version."""


class ModelError(AttestError):
    """A model provider failed; the message says whether to retry, fix a key, or pick another model."""


class UnknownProvider(ModelError, LookupError):
    """A provider name llm-attest does not know."""


class MissingKey(ModelError):
    """No API key is configured for a provider that needs one."""


class RejectedKey(ModelError):
    """The provider refused the API key (401/403)."""


class RateLimited(ModelError):
    """The provider kept answering 429 after the bounded retries."""


class ProviderUnavailable(ModelError):
    """The provider kept failing (5xx, timeouts, connection errors) after the bounded retries."""


class QueryTooLong(ModelError):
    """A query (with its context) that does not fit the model's budget."""


class ModelRefused(ModelError):
    """The model declined to answer (OpenAI's `refusal` field, Anthropic's stop_reason "refusal"); whatever
    partial text came with it is not an answer."""


# -- records and claims --------------------------------------------------------------------------------------
class RecordError(AttestError, ValueError):
    """An attestation record that fails the schema, its size limit, or its signature."""


class UnsupportedSchema(RecordError):
    """A record whose `schema` version this release cannot read."""


class OversizeRecord(RecordError):
    """A record over the configured size limit (on write or on read)."""


class BadSignature(RecordError):
    """A record signature that does not recover to the record's asserter."""


class PreferenceError(AttestError):
    """A ranking that cannot be made or trusted: not a pair, another ranker than the configured one, a pair
    already ranked, or a preference record whose answers are missing or tampered."""


class ClaimError(AttestError, ValueError):
    """A claim that cannot be built within its size limit, or bytes that are not an llm-attest claim."""


class BatchError(AttestError, ValueError):
    """A Merkle batch that cannot be built or trusted: no or duplicate records, too many, a root or proof that
    does not match its leaves, a manifest that fails its schema or its signature."""


# -- verification --------------------------------------------------------------------------------------------
class VerifyError(AttestError):
    """`attest verify` cannot start: an unknown target, or an assertion that does not exist on the network."""


# -- the HTTP service ----------------------------------------------------------------------------------------
class ServeError(AttestError):
    """`attest serve` cannot start as asked (a public bind without API keys), or an API key cannot be made,
    found or revoked."""


# -- the disputer: its state, judge, calibration and evaluation ----------------------------------------------
class DisputerStateError(AttestError):
    """The disputer's SQLite state cannot be opened, migrated or written, or a write breaks its rules."""


class DisputerRunning(DisputerStateError):
    """Another `disputer run` already works on this ATTEST_HOME and network, or signs with this account."""


class StateUnwritable(DisputerStateError):
    """The disputer's state cannot take a write (a full disk, a read-only file): the daemon stops."""


class JudgeError(AttestError):
    """The disputer's judge cannot be built or used as configured."""


class JudgeOutputError(JudgeError, ValueError):
    """A model's reply that is not exactly one JSON verdict {score, rationale}; that sample does not count."""


class CalibrationError(JudgeError, ValueError):
    """A calibration map that cannot be fitted, or a calibration file that cannot be read."""


class EvalDataError(JudgeError, ValueError):
    """An evaluation data set (JSONL rows) that cannot be read; the message names the file and line."""
