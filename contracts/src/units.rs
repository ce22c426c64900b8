//! Token amounts: USDC has 6 decimals, R1 has 18.

use alloy::primitives::U256;

/// `whole` USDC in token units (6 decimals).
pub fn usdc_units(whole: u64) -> U256 {
    U256::from(whole) * U256::from(1_000_000u64)
}

/// `whole` R1 in token units (18 decimals).
pub fn r1_units(whole: u64) -> U256 {
    U256::from(whole) * U256::from(10u64).pow(U256::from(18u64))
}
