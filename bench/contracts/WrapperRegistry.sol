// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

// The design we did NOT ship, kept so bench/gas.py can measure it against the direct path: the asserter
// calls this wrapper, which pulls the bond, asserts on its own behalf with itself as callback recipient and
// records the attestation as Pending. It is the cheapest honest wrapper (no events, one packed slot).

interface IERC20Min {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function approve(address spender, uint256 amount) external returns (bool);
    function allowance(address owner, address spender) external view returns (uint256);
}

interface IOOv3Min {
    function assertTruth(
        bytes memory claim,
        address asserter,
        address callbackRecipient,
        address escalationManager,
        uint64 liveness,
        IERC20Min currency,
        uint256 bond,
        bytes32 identifier,
        bytes32 domainId
    ) external returns (bytes32);
}

contract WrapperRegistry {
    struct Entry {
        address asserter;
        uint8 status;
    }

    IOOv3Min public immutable oracle;
    uint64 public immutable liveness;
    bytes32 public immutable identifier;
    mapping(bytes32 => Entry) public entries;

    constructor(IOOv3Min oracle_, uint64 liveness_, bytes32 identifier_) {
        oracle = oracle_;
        liveness = liveness_;
        identifier = identifier_;
    }

    function attest(bytes calldata claim, bytes32 digest, IERC20Min currency, uint256 bond)
        external
        returns (bytes32 assertionId)
    {
        require(currency.transferFrom(msg.sender, address(this), bond), "bond");
        if (currency.allowance(address(this), address(oracle)) < bond) currency.approve(address(oracle), type(uint256).max);
        assertionId = oracle.assertTruth(claim, msg.sender, address(this), address(0), liveness, currency, bond, identifier, digest);
        entries[assertionId] = Entry(msg.sender, 1);
    }

    function assertionResolvedCallback(bytes32 assertionId, bool truthfully) external {
        require(msg.sender == address(oracle));
        entries[assertionId].status = truthfully ? 3 : 4;
    }

    function assertionDisputedCallback(bytes32 assertionId) external {
        require(msg.sender == address(oracle));
        entries[assertionId].status = 2;
    }
}
