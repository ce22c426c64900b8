// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IUsdcToR1Swap} from "../interfaces/IUsdcToR1Swap.sol";

/// @title A constant-product USDC/R1 pool for development networks
/// @notice Uniswap-V2 pricing (x·y = k, 0.3 % fee) in one direction, USDC in and R1 out, which is
/// all the protocol needs. Liquidity comes from the owner; there are no LP shares.
contract R1UsdcPool is IUsdcToR1Swap, Ownable {
    using SafeERC20 for IERC20;

    /// @notice The USDC token.
    IERC20 public immutable usdc;
    /// @notice The R1 token.
    IERC20 public immutable r1;
    /// @notice USDC held by the pool.
    uint256 public reserveUsdc;
    /// @notice R1 held by the pool.
    uint256 public reserveR1;

    /// @notice The swap would return less than the caller's minimum.
    error InsufficientOutput(uint256 out, uint256 minOut);
    /// @notice The pool has no liquidity for this swap.
    error NoLiquidity();

    /// @notice Liquidity was added.
    event LiquidityAdded(uint256 usdcAmount, uint256 r1Amount);
    /// @notice USDC was swapped for R1.
    event Swapped(address indexed caller, address indexed to, uint256 usdcIn, uint256 r1Out);

    constructor(IERC20 usdc_, IERC20 r1_, address initialOwner) Ownable(initialOwner) {
        usdc = usdc_;
        r1 = r1_;
    }

    /// @notice Pulls both amounts from the owner into the reserves.
    function addLiquidity(uint256 usdcAmount, uint256 r1Amount) external onlyOwner {
        usdc.safeTransferFrom(msg.sender, address(this), usdcAmount);
        r1.safeTransferFrom(msg.sender, address(this), r1Amount);
        reserveUsdc += usdcAmount;
        reserveR1 += r1Amount;
        emit LiquidityAdded(usdcAmount, r1Amount);
    }

    /// @inheritdoc IUsdcToR1Swap
    function quoteUsdcToR1(uint256 usdcIn) public view returns (uint256) {
        if (reserveUsdc == 0 || reserveR1 == 0) revert NoLiquidity();
        uint256 inWithFee = usdcIn * 997;
        return (inWithFee * reserveR1) / (reserveUsdc * 1000 + inWithFee);
    }

    /// @inheritdoc IUsdcToR1Swap
    function swapUsdcForR1(uint256 usdcIn, uint256 minR1Out, address to) external returns (uint256 r1Out) {
        r1Out = quoteUsdcToR1(usdcIn);
        if (r1Out < minR1Out) revert InsufficientOutput(r1Out, minR1Out);
        usdc.safeTransferFrom(msg.sender, address(this), usdcIn);
        reserveUsdc += usdcIn;
        reserveR1 -= r1Out;
        r1.safeTransfer(to, r1Out);
        emit Swapped(msg.sender, to, usdcIn, r1Out);
    }
}
