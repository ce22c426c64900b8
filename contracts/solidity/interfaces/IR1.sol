// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title What the protocol contracts use of the R1 token
interface IR1 is IERC20 {
    /// @notice Mints `amount` to `to` (authorized minters only, within the cap).
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` of the caller's tokens.
    function burn(uint256 amount) external;
}
