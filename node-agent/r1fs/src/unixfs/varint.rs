//! Unsigned LEB128 varints, as protobuf and the multiformats (CID, multihash) write them.
//!
//! Encoding is the same for both. Decoding is strict, as the multiformats `unsigned-varint`
//! rules require: at most 9 bytes (63 bits) and no needless trailing zero groups, so one number
//! has exactly one encoding and a CID has exactly one binary form.

use thiserror::Error;

/// The longest varint the multiformats rules accept (9 bytes carry 63 bits).
pub const MAX_LEN: usize = 9;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VarintError {
    /// The input ended before the varint's last byte (one without the high bit).
    #[error("varint is truncated")]
    Truncated,
    /// More than [`MAX_LEN`] bytes, or a value above 2^63 − 1.
    #[error("varint is longer than {MAX_LEN} bytes")]
    TooLong,
    /// A final zero group after the first byte: the same number has a shorter encoding.
    #[error("varint is not minimally encoded")]
    NotMinimal,
}

/// Appends `value` to `out`.
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        // Truncation is the point: the low seven bits, with the continuation bit set.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// How many bytes [`encode`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Reads one varint from the start of `input`: its value and how many bytes it took.
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().take(MAX_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok((value, i + 1));
        }
        if i + 1 == MAX_LEN {
            return Err(VarintError::TooLong);
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(16_383), [0xff, 0x7f]);
        assert_eq!(enc(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(enc(262_144), [0x80, 0x80, 0x10]);
        assert_eq!(
            enc((1 << 63) - 1),
            [0xff; 8].iter().copied().chain([0x7f]).collect::<Vec<_>>()
        );
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn edges_of_decoding() {
        assert_eq!(decode(&[0x00]), Ok((0, 1)));
        assert_eq!(decode(&[0x80, 0x01, 0xff]), Ok((128, 2)));
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0x81, 0x80, 0x00]), Err(VarintError::NotMinimal));
        let max: Vec<u8> = [0xff; 8].iter().copied().chain([0x7f]).collect();
        assert_eq!(decode(&max), Ok(((1 << 63) - 1, 9)));
        assert_eq!(decode(&[0xff; 9]), Err(VarintError::TooLong));
        assert_eq!(decode(&enc(u64::MAX)), Err(VarintError::TooLong));
    }

    proptest! {
        #[test]
        fn round_trip(value in 0u64..(1 << 63)) {
            let bytes = enc(value);
            prop_assert_eq!(bytes.len(), encoded_len(value));
            prop_assert_eq!(decode(&bytes), Ok((value, bytes.len())));
        }
    }
}
