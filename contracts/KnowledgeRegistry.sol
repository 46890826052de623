// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

/// @title KnowledgeRegistry
/// @notice Which documents (IPFS CIDs) each contributor may put into a governed knowledge base, as decided by one
/// governor (a DAO's timelock, or a plain account). Every approval is kept as an interval of blocks
/// [approvedAt, revokedAt), so anyone can ask, from today's state, whether a CID was approved at an earlier block:
/// a record's context can be checked against the approved set of the block its knowledge base was read at.
/// @dev A CID is keyed by keccak256 of its string; callers use one canonical string form (CIDv1, base32).
/// Events carry the string itself, so a reader of the logs learns the CIDs, and its hash as a topic to filter by.
contract KnowledgeRegistry {
    struct Approval {
        address contributor;
        uint48 approvedAt; // block number
        uint48 revokedAt; // block number; 0 while in force (no revocation happens in block 0)
    }

    address public governor;

    // keccak256(cid) => every approval of it, in order (one storage slot each).
    mapping(bytes32 => Approval[]) private _approvals;
    // contributor => keccak256(cid) => index + 1 in _approvals of the approval in force; 0 when none.
    mapping(address => mapping(bytes32 => uint256)) private _open;

    event Approved(address indexed contributor, bytes32 indexed cidHash, string cid, uint256 blockNumber);
    event Revoked(address indexed contributor, bytes32 indexed cidHash, string cid, uint256 blockNumber);
    event GovernorChanged(address indexed previousGovernor, address indexed newGovernor);

    error NotGovernor(address caller);
    error ZeroAddress();
    error EmptyCid();
    error AlreadyApproved(address contributor, string cid);
    error NotApproved(address contributor, string cid);

    modifier onlyGovernor() {
        if (msg.sender != governor) revert NotGovernor(msg.sender);
        _;
    }

    constructor(address governor_) {
        if (governor_ == address(0)) revert ZeroAddress();
        governor = governor_;
        emit GovernorChanged(address(0), governor_);
    }

    /// @notice Hand governance to another address (a DAO's timelock, say).
    function setGovernor(address newGovernor) external onlyGovernor {
        if (newGovernor == address(0)) revert ZeroAddress();
        emit GovernorChanged(governor, newGovernor);
        governor = newGovernor;
    }

    /// @notice Let `contributor` put the document `cid` into the knowledge base, from this block on.
    function approve(address contributor, string calldata cid) external onlyGovernor {
        if (contributor == address(0)) revert ZeroAddress();
        if (bytes(cid).length == 0) revert EmptyCid();
        bytes32 key = keccak256(bytes(cid));
        if (_open[contributor][key] != 0) revert AlreadyApproved(contributor, cid);
        Approval[] storage list = _approvals[key];
        list.push(Approval(contributor, uint48(block.number), 0));
        _open[contributor][key] = list.length;
        emit Approved(contributor, key, cid, block.number);
    }

    /// @notice End `contributor`'s approval of `cid` at this block (it stays true for the blocks before).
    function revoke(address contributor, string calldata cid) external onlyGovernor {
        bytes32 key = keccak256(bytes(cid));
        uint256 slot = _open[contributor][key];
        if (slot == 0) revert NotApproved(contributor, cid);
        _approvals[key][slot - 1].revokedAt = uint48(block.number);
        delete _open[contributor][key];
        emit Revoked(contributor, key, cid, block.number);
    }

    /// @notice Is `contributor`'s approval of `cid` in force now?
    function isApproved(address contributor, string calldata cid) external view returns (bool) {
        return _open[contributor][keccak256(bytes(cid))] != 0;
    }

    /// @notice The block at which `contributor`'s approval of `cid` in force began; 0 when none is in force.
    function approvedAt(address contributor, string calldata cid) external view returns (uint256) {
        bytes32 key = keccak256(bytes(cid));
        uint256 slot = _open[contributor][key];
        return slot == 0 ? 0 : _approvals[key][slot - 1].approvedAt;
    }

    /// @notice Was some contributor's approval of `cid` in force at `blockNumber`
    /// (approvedAt <= blockNumber < revokedAt)?
    function wasApprovedAt(string calldata cid, uint256 blockNumber) external view returns (bool) {
        Approval[] storage list = _approvals[keccak256(bytes(cid))];
        for (uint256 i = 0; i < list.length; i++) {
            Approval storage a = list[i];
            if (a.approvedAt <= blockNumber && (a.revokedAt == 0 || blockNumber < a.revokedAt)) return true;
        }
        return false;
    }

    /// @notice Every approval of `cid`, in order, with the blocks it began and ended at (0: still in force).
    function approvalsOf(string calldata cid) external view returns (Approval[] memory) {
        return _approvals[keccak256(bytes(cid))];
    }
}
