//! Strict lowercase hex, so that every distinct byte string has exactly one text form and a
//! changed character can never decode to the same bytes.

/// `0x` followed by the lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    format!("0x{}", encode_bare(bytes))
}

/// The lowercase hex of `bytes` without a prefix, as OCI digests and container ids spell it.
pub fn encode_bare(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes `0x` + exactly `N` bytes of lowercase hex; anything else is `None`.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode_vec(text)?.try_into().ok()
}

/// Decodes `0x` + lowercase hex of any whole number of bytes; anything else is `None`.
pub fn decode_vec(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let bytes = [0x00, 0xab, 0xff, 0x10];
        assert_eq!(encode(&bytes), "0x00abff10");
        assert_eq!(decode::<4>("0x00abff10"), Some(bytes));
        assert_eq!(decode::<4>("0x00ABff10"), None);
        assert_eq!(decode::<4>("00abff10"), None);
        assert_eq!(decode::<4>("0x00abff1"), None);
        assert_eq!(decode::<3>("0x00abff10"), None);
    }
}
