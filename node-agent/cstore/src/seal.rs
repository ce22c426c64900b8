//! Seals: one signature over a batch of entries, and each entry's proof that it is in the
//! batch. Signing every write on its own would cap a node at a few thousand writes a second
//! (a secp256k1 signature costs ~150 µs, its recovery ~370 µs), so the engine acknowledges a
//! write once it is logged and seals what was written since the last seal a few milliseconds
//! later: the writer signs the root of a Merkle tree over the batch's entry digests, and every
//! entry carries the signature and the sibling hashes up to the root. A peer checks an entry
//! alone (its proof gives the root, the root's signature gives the writer) and checks a whole
//! gossiped batch with one signature recovery ([`Verifier`] remembers recovered roots).
//!
//! The tree: a leaf is `SHA-256(0x00 ‖ digest)`, an inner node `SHA-256(0x01 ‖ min ‖ max)` of
//! its two children (sorted, so a proof needs no left/right flags), and a node without a
//! sibling is carried up a level unchanged. The prefixes keep a leaf from passing as an inner
//! node.

use std::collections::HashMap;

use alloy_primitives::{Address, Signature};
use r1_protocol::Identity;
use sha2::{Digest, Sha256};

/// Longest proof: a batch holds at most 2^32 entries.
pub const MAX_PROOF: usize = 32;
/// Bytes of a signature (r, s, v).
pub const SIGNATURE_LEN: usize = 65;

const DOMAIN: &[u8] = b"r1.cstore.seal.v1\n";

/// A 32-byte SHA-256 hash.
pub type Hash = [u8; 32];

/// An entry's place in a signed batch: the writer's signature over the batch root and the
/// sibling hashes from the entry's leaf to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The writer's personal signature over the domain and the root.
    pub signature: [u8; SIGNATURE_LEN],
    /// Sibling hashes from the leaf up (at most [`MAX_PROOF`]).
    pub proof: Vec<Hash>,
}

fn leaf(digest: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(digest);
    hasher.finalize().into()
}

fn parent(a: &Hash, b: &Hash) -> Hash {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(low);
    hasher.update(high);
    hasher.finalize().into()
}

/// The root a proof leads to from an entry's digest.
pub fn root_of(digest: &Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(leaf(digest), |node, sibling| parent(&node, sibling))
}

/// The root of a batch of digests and each one's proof, in the batch's order.
pub fn tree(digests: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    let mut proofs = vec![Vec::new(); digests.len()];
    // Which leaves sit under each node of the current level.
    let mut level: Vec<(Hash, Vec<usize>)> = digests
        .iter()
        .enumerate()
        .map(|(i, d)| (leaf(d), vec![i]))
        .collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut nodes = level.into_iter();
        while let Some((left, mut under_left)) = nodes.next() {
            match nodes.next() {
                Some((right, under_right)) => {
                    for &i in &under_left {
                        proofs[i].push(right);
                    }
                    for &i in &under_right {
                        proofs[i].push(left);
                    }
                    under_left.extend(under_right);
                    next.push((parent(&left, &right), under_left));
                }
                None => next.push((left, under_left)),
            }
        }
        level = next;
    }
    let root = level.first().map_or([0; 32], |(root, _)| *root);
    (root, proofs)
}

fn signing_bytes(root: &Hash) -> Vec<u8> {
    [DOMAIN, root.as_slice()].concat()
}

/// Signs a batch of entry digests as `identity`: one seal per digest, in order.
pub fn seal_batch(digests: &[Hash], identity: &Identity) -> Result<Vec<Seal>, String> {
    let (root, proofs) = tree(digests);
    let signature = identity
        .sign_personal(&signing_bytes(&root))
        .map_err(|e| e.to_string())?
        .as_bytes();
    Ok(proofs
        .into_iter()
        .map(|proof| Seal { signature, proof })
        .collect())
}

/// Recovers sealers, remembering each (root, signature) it recovered, so the entries of one
/// batch cost one recovery together.
#[derive(Debug, Default)]
pub struct Verifier {
    recovered: HashMap<(Hash, [u8; SIGNATURE_LEN]), Option<Address>>,
}

impl Verifier {
    /// A verifier that remembers nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Who sealed the entry with `digest` under `seal`, if the signature recovers at all.
    pub fn signer(&mut self, digest: &Hash, seal: &Seal) -> Option<Address> {
        let root = root_of(digest, &seal.proof);
        *self
            .recovered
            .entry((root, seal.signature))
            .or_insert_with(|| {
                Signature::from_raw(&seal.signature)
                    .ok()
                    .and_then(|s| r1_protocol::recovery::recover_personal(&s, signing_bytes(&root)))
                    .map(|signer| signer.address)
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn digest(i: u32) -> Hash {
        Sha256::digest(i.to_be_bytes()).into()
    }

    proptest! {
        #[test]
        fn every_proof_leads_to_the_root_and_no_other_digest_does(n in 1u32..70) {
            let digests: Vec<Hash> = (0..n).map(digest).collect();
            let (root, proofs) = tree(&digests);
            prop_assert_eq!(proofs.len(), digests.len());
            for (d, proof) in digests.iter().zip(&proofs) {
                prop_assert_eq!(root_of(d, proof), root);
                prop_assert!(proof.len() <= 7);
                prop_assert_ne!(root_of(&digest(n + 1), proof), root);
            }
        }
    }

    #[test]
    fn a_batch_recovers_its_sealer_once_and_a_foreign_digest_does_not() {
        let node = Identity::generate();
        let digests: Vec<Hash> = (0..5).map(digest).collect();
        let seals = seal_batch(&digests, &node).unwrap();
        let mut verifier = Verifier::new();
        for (d, seal) in digests.iter().zip(&seals) {
            assert_eq!(verifier.signer(d, seal), Some(node.address()));
        }
        assert_eq!(verifier.recovered.len(), 1, "one recovery for the batch");
        assert_ne!(
            verifier.signer(&digest(99), &seals[0]),
            Some(node.address())
        );
    }

    #[test]
    fn a_batch_of_one_is_its_own_root() {
        let (root, proofs) = tree(&[digest(1)]);
        assert_eq!(root, leaf(&digest(1)));
        assert!(proofs[0].is_empty());
    }
}
