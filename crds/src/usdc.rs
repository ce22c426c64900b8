//! Exact USDC amounts (6 decimals), as the escrow contract counts them.

use std::fmt;
use std::str::FromStr;

/// USDC has 6 decimals on every chain r1 supports.
pub const USDC_DECIMALS: u32 = 6;
const UNIT: u64 = 10u64.pow(USDC_DECIMALS);

/// An amount of USDC in its smallest unit (10⁻⁶ USDC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usdc(pub u64);

/// Why a text is not a USDC amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdcParseError {
    /// Not a plain decimal number.
    #[error("{0:?} is not a USDC amount (expected a decimal such as 0.375)")]
    Malformed(String),
    /// More than six decimals.
    #[error("{0:?} has more than 6 decimals")]
    TooPrecise(String),
    /// Larger than the amounts r1 handles.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

impl Usdc {
    /// The smallest-unit count.
    pub fn units(self) -> u64 {
        self.0
    }

    /// `self × factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: u64) -> Option<Self> {
        self.0.checked_mul(factor).map(Self)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl FromStr for Usdc {
    type Err = UsdcParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || UsdcParseError::Malformed(text.to_owned());
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits_only(whole)
            || !digits_only(frac)
            || (text.contains('.') && frac.is_empty())
        {
            return Err(malformed());
        }
        if frac.len() > USDC_DECIMALS as usize {
            return Err(UsdcParseError::TooPrecise(text.to_owned()));
        }
        let too_large = || UsdcParseError::TooLarge(text.to_owned());
        let whole: u64 = whole.parse().map_err(|_| too_large())?;
        let frac_units: u64 = format!("{frac:0<6}").parse().map_err(|_| malformed())?;
        whole
            .checked_mul(UNIT)
            .and_then(|w| w.checked_add(frac_units))
            .map(Self)
            .ok_or_else(too_large)
    }
}

impl fmt::Display for Usdc {
    /// Shows at least two decimals and no trailing zeros beyond them: `0.375`, `22.50`, `0.166666`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frac = format!("{:06}", self.0 % UNIT);
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        f.pad(&format!("{}.{shown}", self.0 / UNIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_shows() {
        assert_eq!("0.375".parse(), Ok(Usdc(375_000)));
        assert_eq!("12.50".parse(), Ok(Usdc(12_500_000)));
        assert_eq!("0.166666".parse(), Ok(Usdc(166_666)));
        assert_eq!("3".parse(), Ok(Usdc(3_000_000)));
        assert_eq!(Usdc(22_500_000).to_string(), "22.50");
        assert_eq!(Usdc(166_666).to_string(), "0.166666");
        assert_eq!(Usdc(0).to_string(), "0.00");
        for bad in ["", ".5", "1.", "1,5", "-1", "1e3", "0x10"] {
            assert!(
                matches!(bad.parse::<Usdc>(), Err(UsdcParseError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "0.1234567".parse::<Usdc>(),
            Err(UsdcParseError::TooPrecise(_))
        ));
        assert!(matches!(
            "99999999999999999999".parse::<Usdc>(),
            Err(UsdcParseError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn display_round_trips(units in 0u64..u64::MAX / 2) {
            prop_assert_eq!(Usdc(units).to_string().parse::<Usdc>(), Ok(Usdc(units)));
        }
    }
}
