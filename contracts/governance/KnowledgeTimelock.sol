// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.20;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title KnowledgeTimelock
/// @notice OpenZeppelin's TimelockController as it is, named here so the project compiles (and ships) its bytecode:
/// it executes what the KnowledgeGovernor passed, `minDelay` seconds after it was queued.
contract KnowledgeTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
