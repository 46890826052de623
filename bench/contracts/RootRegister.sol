// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

// The channel for a batch root we did NOT ship, kept so bench/batch_gas.py can measure it: assert with
// domainId = 0, then tell a registry the root in a second transaction. This is its cheapest form (one
// storage write, no check of who registers or of the assertion), a lower bound for any honest version.
contract RootRegister {
    mapping(bytes32 assertionId => bytes32 root) public rootOf;

    function register(bytes32 assertionId, bytes32 root) external {
        rootOf[assertionId] = root;
    }
}
