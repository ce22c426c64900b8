// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CspEscrow} from "../CspEscrow.sol";

/// @title A second escrow implementation, used to prove beacon upgrades in tests
contract CspEscrowV2 is CspEscrow {
    /// @notice Implementation version 2.
    function version() external pure override returns (uint256) {
        return 2;
    }
}
