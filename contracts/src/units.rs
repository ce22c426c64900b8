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

/// USDC `units` (6 decimals) as text the way r1 shows amounts everywhere: at least two
/// decimals and no trailing zeros beyond them (`0.375`, `22.50`).
pub fn usdc_text(units: U256) -> String {
    let million = U256::from(1_000_000u64);
    let fraction = format!("{:06}", u64::try_from(units % million).unwrap_or_default());
    let trimmed = fraction.trim_end_matches('0');
    let shown = if trimmed.len() < 2 {
        &fraction[..2]
    } else {
        trimmed
    };
    format!("{}.{shown}", units / million)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usdc_text_shows_two_decimals_at_least() {
        assert_eq!(usdc_text(U256::ZERO), "0.00");
        assert_eq!(usdc_text(usdc_units(12)), "12.00");
        assert_eq!(usdc_text(U256::from(12_500_000u64)), "12.50");
        assert_eq!(usdc_text(U256::from(375_000u64)), "0.375");
        assert_eq!(usdc_text(U256::from(1u64)), "0.000001");
    }
}
