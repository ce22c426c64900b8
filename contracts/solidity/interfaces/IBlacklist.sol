// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The trust registry: nodes governance has blacklisted
interface IBlacklist {
    /// @notice Whether `node` is blacklisted (never paid, never validated).
    function isBlacklisted(address node) external view returns (bool);
}
