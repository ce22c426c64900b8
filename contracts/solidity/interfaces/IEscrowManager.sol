// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IBlacklist} from "./IBlacklist.sol";

/// @title What a CSP escrow needs from the PoAI manager
interface IEscrowManager is IBlacklist {
    /// @notice The settlement token.
    function usdc() external view returns (IERC20);

    /// @notice The epoch now: `(block.timestamp - genesis) / epochSeconds`.
    function currentEpoch() external view returns (uint256);

    /// @notice When epoch 0 began: escrows settle jobs by the second from it.
    function genesisTimestamp() external view returns (uint256);

    /// @notice Seconds per epoch: a job's price per epoch is paid over this many seconds.
    function epochSeconds() external view returns (uint256);

    /// @notice Governance price per node per epoch of a job type (0 = not offered).
    function jobTypePrice(uint8 jobType) external view returns (uint256);

    /// @notice Seconds after its request before a job never started may be redeemed.
    function redeemDelay() external view returns (uint256);

    /// @notice Allocates a network-wide job id to the calling escrow.
    function registerJob() external returns (uint256 jobId);

    /// @notice Takes a job that never started out of the open set, for the calling escrow's
    /// redeem; reverts unless the job is the caller's, open and unstarted.
    function releaseUnstartedJob(uint256 jobId) external;

    /// @notice Takes an open job of the calling escrow out of the open set while the protocol
    /// is stalled (no allocation for `exitAfterEpochs` epochs), for its owner's exit.
    function releaseStalledJob(uint256 jobId) external;

    /// @notice Queues `amount` USDC, already sent to the manager by the calling escrow, for the
    /// next burn (swapped to R1 and burned by `burnPendingFees`).
    function burnUsdc(uint256 amount) external;
}
