// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title R1, the Ratio1 utility token
/// @notice 18 decimals, burnable by any holder, hard-capped at 161,803,398 R1. Only addresses the
/// owner authorizes (the Node Deed contract for Proof-of-Availability, a genesis distributor)
/// can mint.
contract R1 is ERC20Capped, ERC20Burnable, Ownable {
    /// @notice The hard cap: 161,803,398 R1 in wei units.
    uint256 public constant MAX_SUPPLY = 161_803_398 ether;

    /// @notice Addresses allowed to mint.
    mapping(address => bool) public isMinter;

    /// @notice A mint was attempted by an address that is not an authorized minter.
    error NotMinter(address caller);

    /// @notice The owner granted or revoked minting rights.
    event MinterSet(address indexed minter, bool allowed);

    constructor(address initialOwner) ERC20("Ratio1", "R1") ERC20Capped(MAX_SUPPLY) Ownable(initialOwner) {}

    /// @notice Grants (`allowed`) or revokes minting rights.
    function setMinter(address minter, bool allowed) external onlyOwner {
        isMinter[minter] = allowed;
        emit MinterSet(minter, allowed);
    }

    /// @notice Mints `amount` to `to`; reverts beyond the cap.
    function mint(address to, uint256 amount) external {
        if (!isMinter[msg.sender]) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
