// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IBlacklist} from "./IBlacklist.sol";

/// @title What the Node Deed needs from the PoAI manager
interface ILicenceManager is IBlacklist {
    /// @notice Whether `oracle` is in the oracle set (its signature attests a node link).
    function isOracle(address oracle) external view returns (bool);

    /// @notice Whether governance has suspended `node` for the epoch in progress (no new work,
    /// no PoA).
    function isSuspended(address node) external view returns (bool);

    /// @notice USDC credited to `node` in every escrow and not claimed yet.
    function pendingRewards(address node) external view returns (uint256);
}
