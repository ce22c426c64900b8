//! Deterministic bytes that neither compress nor repeat by chunk, for files and image layers
//! whose transfer a test or benchmark measures.

/// `len` bytes from an xorshift generator seeded with `seed`.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}
