// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The venue that turns escrowed USDC into R1
/// @notice Implemented by the development pool (`R1UsdcPool`); a real DEX router adapter can
/// stand in. The caller must have approved `usdcIn` USDC to the venue.
interface IUsdcToR1Swap {
    /// @notice Pulls `usdcIn` USDC from the caller and sends at least `minR1Out` R1 to `to`.
    function swapUsdcForR1(uint256 usdcIn, uint256 minR1Out, address to) external returns (uint256 r1Out);

    /// @notice The R1 that `usdcIn` USDC would buy now.
    function quoteUsdcToR1(uint256 usdcIn) external view returns (uint256 r1Out);
}
