// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IOptimisticOracleV3, IOptimisticOracleV3CallbackRecipient} from "./interfaces/IOptimisticOracleV3.sol";

/// @title AttestationRegistry
/// @notice On-chain outcome of llm-attest attestations. An asserter calls OptimisticOracleV3.assertTruth
/// directly, naming this contract as `callbackRecipient` and the record digest as `domainId`; the registry
/// learns of the assertion only through OOv3's callbacks, so asserting costs nothing extra here.
/// @dev A `domainId` is either one record digest or the Merkle root of a batch of record digests (an
/// OpenZeppelin StandardMerkleTree, see attest/batch/merkle.py); the registry attests whatever bytes32 the
/// assertion carried, and `isAttestedInBatch` proves a record's membership under an attested root. The root
/// travels as `domainId` because that is the cheapest channel measured (docs/benchmarks.md): OOv3 stores it
/// anyway, and any other way (a registration call, a wrapper) costs a second transaction or a second bond transfer.
///
/// Anyone can name this registry as callback recipient, so an assertion only counts as an attestation when
/// watchers could really have disputed it before the DVM: no escalation manager (which could arbitrate or
/// block disputes itself) and a liveness of at least `minLiveness`. Anything else resolves to Rejected.
contract AttestationRegistry is IOptimisticOracleV3CallbackRecipient {
    enum Status {
        None, // not an assertion made with this registry as callback recipient
        Pending, // asserted, within liveness, not disputed
        Disputed, // disputed, waiting for the oracle
        Attested, // resolved true
        Rejected // resolved false, or not eligible
    }

    struct Attestation {
        bytes32 digest;
        address asserter;
        Status status;
        uint64 expirationTime;
    }

    IOptimisticOracleV3 public immutable oracle;
    uint64 public immutable minLiveness;

    /// The first assertion that attested a digest: the registry's only storage. Everything else about an
    /// assertion (digest, asserter, dispute, resolution) is already stored by the oracle, immutably; the
    /// registry reads it there instead of paying to store it twice (see docs/benchmarks.md).
    mapping(bytes32 digest => bytes32 assertionId) public attestedBy;

    event AttestationDisputed(bytes32 indexed assertionId, bytes32 indexed digest, address indexed asserter);
    event AttestationResolved(
        bytes32 indexed assertionId,
        bytes32 indexed digest,
        address indexed asserter,
        Status status
    );
    /// An assertion that resolved true but does not count (escalation manager, or too short a liveness).
    event AttestationIneligible(bytes32 indexed assertionId, bytes32 indexed digest, string reason);

    /// Evidence about an assertion, published by anyone (a disputer naming the records that fail a batch): the
    /// registry stores nothing, the event is where voters and dashboards find the pinned document at `uri`.
    event Evidence(bytes32 indexed assertionId, address indexed by, string uri);

    /// A timestamped, public proof that `by` held the records under `root` (the Merkle root of signed preference
    /// digests, see attest/flow/anchor.py). Not a truth claim, so no bond and no oracle: the event is the proof.
    event Anchored(address indexed by, bytes32 indexed root);

    error NotOracle(address caller);
    error ZeroOracle();

    constructor(IOptimisticOracleV3 oracle_, uint64 minLiveness_) {
        if (address(oracle_) == address(0)) revert ZeroOracle();
        oracle = oracle_;
        minLiveness = minLiveness_;
    }

    modifier onlyOracle() {
        if (msg.sender != address(oracle)) revert NotOracle(msg.sender);
        _;
    }

    /// @dev Must not revert once the caller is the oracle: a reverting recipient would block settlement.
    function assertionDisputedCallback(bytes32 assertionId) external onlyOracle {
        IOptimisticOracleV3.Assertion memory a = oracle.getAssertion(assertionId);
        emit AttestationDisputed(assertionId, a.domainId, a.asserter);
    }

    /// @dev Must not revert once the caller is the oracle: a reverting recipient would block settlement.
    function assertionResolvedCallback(bytes32 assertionId, bool assertedTruthfully) external onlyOracle {
        IOptimisticOracleV3.Assertion memory a = oracle.getAssertion(assertionId);
        Status status = Status.Rejected;
        if (assertedTruthfully) {
            string memory reason = _ineligibility(a);
            if (bytes(reason).length == 0) {
                status = Status.Attested;
                if (attestedBy[a.domainId] == bytes32(0)) attestedBy[a.domainId] = assertionId;
            } else {
                emit AttestationIneligible(assertionId, a.domainId, reason);
            }
        }
        emit AttestationResolved(assertionId, a.domainId, a.asserter, status);
    }

    /// @notice Announce evidence about `assertionId` (an ipfs:// URI of a pinned document); open to anyone, no storage.
    function publishEvidence(bytes32 assertionId, string calldata uri) external {
        emit Evidence(assertionId, msg.sender, uri);
    }

    /// @notice Anchor `root` under the caller's address: open to anyone, no storage (the event's log is the record).
    function anchor(bytes32 root) external {
        emit Anchored(msg.sender, root);
    }

    /// @notice True once some eligible assertion carrying `digest` resolved true.
    function isAttested(bytes32 digest) external view returns (bool) {
        return attestedBy[digest] != bytes32(0);
    }

    /// @notice True once `proof` places record `digest` in the batch with Merkle root `root`, and some eligible
    /// assertion carrying `root` resolved true. The leaf is OpenZeppelin's StandardMerkleTree leaf of one
    /// bytes32, hashed twice so no inner node of a tree can pass for a leaf.
    function isAttestedInBatch(bytes32 digest, bytes32 root, bytes32[] calldata proof) external view returns (bool) {
        if (attestedBy[root] == bytes32(0)) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(digest))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice The digest, asserter, status and expiration of an assertion made with this registry.
    function attestationOf(bytes32 assertionId) external view returns (Attestation memory) {
        IOptimisticOracleV3.Assertion memory a = oracle.getAssertion(assertionId);
        if (a.asserter == address(0) || a.callbackRecipient != address(this)) {
            return Attestation(bytes32(0), address(0), Status.None, 0);
        }
        Status status;
        if (!a.settled) status = a.disputer == address(0) ? Status.Pending : Status.Disputed;
        else if (a.settlementResolution && bytes(_ineligibility(a)).length == 0) status = Status.Attested;
        else status = Status.Rejected;
        return Attestation(a.domainId, a.asserter, status, a.expirationTime);
    }

    function _ineligibility(IOptimisticOracleV3.Assertion memory a) private view returns (string memory) {
        if (a.escalationManagerSettings.escalationManager != address(0)) return "escalation manager";
        if (a.expirationTime - a.assertionTime < minLiveness) return "liveness below minimum";
        return "";
    }
}
