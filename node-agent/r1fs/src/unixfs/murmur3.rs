//! MurmurHash3 x64 128-bit (seed 0), the hash a UnixFS HAMT places entry names with.
//!
//! go-unixfs/boxo (and kubo) use the first 64-bit word, `h1`, read from its most significant
//! bit down (`spaolacci/murmur3`'s `Sum64`); that is multicodec 0x22, "murmur3-x64-64".

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// The final avalanche of one 64-bit word.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// Reads up to 8 bytes as a little-endian word (the tail of the input is shorter).
fn le_word(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |word, &b| (word << 8) | u64::from(b))
}

/// MurmurHash3_x64_128 of `data` with seed 0: the two words `(h1, h2)`.
pub fn x64_128(data: &[u8]) -> (u64, u64) {
    let mut h1 = 0u64;
    let mut h2 = 0u64;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (k1, k2) = block.split_at(8);
        h1 ^= mix_k1(le_word(k1));
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(le_word(k2));
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= mix_k2(le_word(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(le_word(&tail[..tail.len().min(8)]));
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The HAMT hash of an entry name: `h1` of [`x64_128`].
pub fn x64_64(data: &[u8]) -> u64 {
    x64_128(data).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_js_importers_murmur3() {
        // `murmur3128.encode` of @multiformats/murmur3 2.2.8 (the importer's hash), printed as
        // hex: h1 then h2, each most significant byte first.
        for (input, hex) in [
            ("", "00000000000000000000000000000000"),
            ("hello", "cbd8a7b341bd9b025b1e906a48ae1d19"),
            ("a", "85555565f6597889e6b53a48510e895a"),
            ("abcdefghijklmnop", "c4ca3ca3224cb7234333d695b331eb1a"),
            ("abcdefghijklmnopq", "7564747f88bda657ecda499da1110de4"),
            ("file-0001.bin", "a49c10ae4ca89b33c70b614678a5a5cc"),
            (
                "The quick brown fox jumps over the lazy dog",
                "e34bbc7bbc071b6c7a433ca9c49a9347",
            ),
        ] {
            let (h1, h2) = x64_128(input.as_bytes());
            assert_eq!(format!("{h1:016x}{h2:016x}"), hex, "{input:?}");
            assert_eq!(x64_64(input.as_bytes()), h1);
        }
    }
}
