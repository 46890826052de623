// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

// The anchor we did NOT ship, kept so bench/anchor_gas.py can measure it: one event per preference, naming its
// digest, the ranker, both answer digests and the choice, from a contract of its own.
contract PreferenceEvent {
    event Ranked(bytes32 indexed digest, address indexed ranker, bytes32 first, bytes32 second, uint8 choice);

    function rank(bytes32 digest, bytes32 first, bytes32 second, uint8 choice) external {
        emit Ranked(digest, msg.sender, first, second, choice);
    }
}
