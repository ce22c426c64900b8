//! Kubernetes-style resource quantities (`500m`, `2`, `512Mi`, `1.5G`, `1e3`).
//!
//! A [`Quantity`] keeps exactly what the user wrote, so manifests round-trip unchanged; parsing
//! into a number happens in validation and placement, where an error can name the field.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resource amount as written in a manifest: an integer or a string such as `500m` or `512Mi`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Quantity(pub String);

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not follow `<number><suffix>`.
    #[error("{0:?} is not a quantity")]
    Malformed(String),
    /// The quantity is below zero.
    #[error("{0:?} is negative")]
    Negative(String),
    /// The quantity does not fit the unit it is converted to.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// The quantity has a fractional part finer than the unit it is converted to.
    #[error("{0:?} is finer than {1}")]
    TooPrecise(String, &'static str),
}

impl Quantity {
    /// Wraps a literal such as `"500m"`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// CPU in millicores (`500m` → 500, `2` → 2000, `0.25` → 250).
    pub fn to_millis(&self) -> Result<u64, QuantityError> {
        self.scaled(3, "1m")
    }

    /// Bytes (`512Mi` → 536870912, `1G` → 10⁹).
    pub fn to_bytes(&self) -> Result<u64, QuantityError> {
        self.scaled(0, "1 byte")
    }

    /// Value × 10^`decimals`, exact, or an error naming the problem.
    fn scaled(&self, decimals: u32, unit: &'static str) -> Result<u64, QuantityError> {
        let parsed = Parsed::from_text(&self.0)?;
        parsed.scaled(decimals, &self.0, unit)
    }
}

/// A quantity split into its exact parts: `mantissa × 10^exp10 × 2^exp2`.
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Parsed {
    fn from_text(text: &str) -> Result<Self, QuantityError> {
        let malformed = || QuantityError::Malformed(text.to_owned());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(malformed());
        }
        let mut mantissa: u128 = 0;
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(digit - b'0')))
                .ok_or_else(|| QuantityError::TooLarge(text.to_owned()))?;
        }
        let frac_digits = i32::try_from(frac_part.len()).map_err(|_| malformed())?;
        let (exp10, exp2) = match suffix {
            "" => (0, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            exp if exp.starts_with(['e', 'E']) => {
                let digits = &exp[1..];
                let value: i32 = digits.parse().map_err(|_| malformed())?;
                if !(-30..=30).contains(&value) {
                    return Err(malformed());
                }
                (value, 0)
            }
            _ => return Err(malformed()),
        };
        Ok(Self {
            negative,
            mantissa,
            exp10: exp10 - frac_digits,
            exp2,
        })
    }

    fn scaled(&self, decimals: u32, text: &str, unit: &'static str) -> Result<u64, QuantityError> {
        let too_large = || QuantityError::TooLarge(text.to_owned());
        if self.negative && self.mantissa != 0 {
            return Err(QuantityError::Negative(text.to_owned()));
        }
        let mut value = self
            .mantissa
            .checked_mul(1u128 << self.exp2)
            .ok_or_else(too_large)?;
        let exp = self.exp10 + i32::try_from(decimals).map_err(|_| too_large())?;
        if exp >= 0 {
            let factor = 10u128
                .checked_pow(exp.unsigned_abs())
                .ok_or_else(too_large)?;
            value = value.checked_mul(factor).ok_or_else(too_large)?;
        } else {
            let divisor = 10u128
                .checked_pow(exp.unsigned_abs())
                .ok_or_else(|| QuantityError::TooPrecise(text.to_owned(), unit))?;
            if value % divisor != 0 {
                return Err(QuantityError::TooPrecise(text.to_owned(), unit));
            }
            value /= divisor;
        }
        u64::try_from(value).map_err(|_| too_large())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Quantity {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 2, \"500m\" or \"512Mi\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::new(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_forms() {
        assert_eq!(Quantity::from("500m").to_millis(), Ok(500));
        assert_eq!(Quantity::from("2").to_millis(), Ok(2000));
        assert_eq!(Quantity::from("0.25").to_millis(), Ok(250));
        assert_eq!(Quantity::from("1.5").to_millis(), Ok(1500));
        assert_eq!(Quantity::from("+3").to_millis(), Ok(3000));
        assert_eq!(
            Quantity::from("0.0005").to_millis(),
            Err(QuantityError::TooPrecise("0.0005".into(), "1m"))
        );
    }

    #[test]
    fn memory_forms() {
        assert_eq!(Quantity::from("512Mi").to_bytes(), Ok(512 << 20));
        assert_eq!(Quantity::from("1Gi").to_bytes(), Ok(1 << 30));
        assert_eq!(Quantity::from("1.5Gi").to_bytes(), Ok(3 << 29));
        assert_eq!(Quantity::from("1G").to_bytes(), Ok(1_000_000_000));
        assert_eq!(Quantity::from("128974848").to_bytes(), Ok(128_974_848));
        assert_eq!(Quantity::from("129e6").to_bytes(), Ok(129_000_000));
        assert_eq!(Quantity::from("123E3").to_bytes(), Ok(123_000));
        assert_eq!(Quantity::from("1e+3").to_bytes(), Ok(1000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "12XB", "Mi", "1.2.3", "--1", "1 Gi", "e3", "1e", "1e99", "0x10", ".", "1e3.5",
        ] {
            assert!(
                matches!(
                    Quantity::from(bad).to_bytes(),
                    Err(QuantityError::Malformed(_))
                ),
                "{bad:?} should be malformed"
            );
        }
        assert_eq!(
            Quantity::from("-1").to_bytes(),
            Err(QuantityError::Negative("-1".into()))
        );
        assert!(matches!(
            Quantity::from("99999999Ei").to_bytes(),
            Err(QuantityError::TooLarge(_))
        ));
        assert_eq!(
            Quantity::from("12XB").to_bytes().unwrap_err().to_string(),
            "\"12XB\" is not a quantity"
        );
    }

    #[test]
    fn integers_and_strings_deserialize() {
        let q: Quantity = serde_yaml::from_str("2").unwrap();
        assert_eq!(q.as_str(), "2");
        let q: Quantity = serde_yaml::from_str("\"500m\"").unwrap();
        assert_eq!(q.to_millis(), Ok(500));
    }

    proptest! {
        #[test]
        fn binary_suffixes_are_exact(n in 0u64..1_000_000, shift in prop::sample::select(vec![("Ki", 10u32), ("Mi", 20), ("Gi", 30)])) {
            let q = Quantity(format!("{n}{}", shift.0));
            prop_assert_eq!(q.to_bytes(), Ok(n << shift.1));
        }

        #[test]
        fn millis_round_trip(m in 0u64..10_000_000) {
            prop_assert_eq!(Quantity(format!("{m}m")).to_millis(), Ok(m));
            let whole = format!("{}.{:03}", m / 1000, m % 1000);
            prop_assert_eq!(Quantity(whole).to_millis(), Ok(m));
        }

        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let q = Quantity(text);
            let _ = q.to_bytes();
            let _ = q.to_millis();
        }
    }
}
