// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title Test USDC for development networks
/// @notice A 6-decimal ERC-20 the owner mints at will. Never deployed outside development.
contract TestUSDC is ERC20, Ownable {
    constructor(address initialOwner) ERC20("Test USD Coin", "USDC") Ownable(initialOwner) {}

    /// @notice USDC has 6 decimals.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` (6-decimal units) to `to`.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
