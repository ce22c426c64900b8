//! Rendezvous (highest-random-weight) scores.
//!
//! Each replica ranks every node by `keccak256(job_id ‖ salt ‖ replica ‖ node)` (big-endian
//! u64, u64, u32, then the 20 address bytes) and takes the best eligible one. A node's score
//! does not depend on which other nodes exist, so removing a node that no replica chose changes
//! nothing, and a new node takes over a given replica only when it outranks that replica's
//! current choice (probability about 1/n). Scoring per replica rather than per job keeps
//! replica indices stable, not just the set of nodes.

use alloy_primitives::{Address, B256, keccak256};

/// The score of `node` for `replica` of `job_id`; `salt` lets a caller reshuffle (e.g. the
/// spec generation), and is 0 otherwise. Higher wins.
pub fn score(job_id: u64, salt: u64, replica: u32, node: &Address) -> B256 {
    let mut input = [0u8; 8 + 8 + 4 + 20];
    input[..8].copy_from_slice(&job_id.to_be_bytes());
    input[8..16].copy_from_slice(&salt.to_be_bytes());
    input[16..20].copy_from_slice(&replica.to_be_bytes());
    input[20..].copy_from_slice(node.as_slice());
    keccak256(input)
}

/// Where `replica` of `job_id` falls among the nodes ordered by address: the shard of a large
/// fleet it ranks first ([`super::place`]). Uniform over the address space, as node addresses
/// are, so the shards share the replicas evenly.
pub fn ring_point(job_id: u64, salt: u64, replica: u32) -> Address {
    let mut input = [0u8; 8 + 8 + 4];
    input[..8].copy_from_slice(&job_id.to_be_bytes());
    input[8..16].copy_from_slice(&salt.to_be_bytes());
    input[16..20].copy_from_slice(&replica.to_be_bytes());
    Address::from_slice(&keccak256(input)[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_depend_on_every_input() {
        let node = Address::with_last_byte(1);
        let base = score(1, 0, 0, &node);
        assert_eq!(base, score(1, 0, 0, &node));
        assert_ne!(base, score(2, 0, 0, &node));
        assert_ne!(base, score(1, 1, 0, &node));
        assert_ne!(base, score(1, 0, 1, &node));
        assert_ne!(base, score(1, 0, 0, &Address::with_last_byte(2)));
    }

    #[test]
    fn the_layout_is_fixed() {
        // Pinned so a change of the hashed layout (which would move every replica) is noticed.
        let mut input = [0u8; 40];
        input[7] = 7;
        input[15] = 3;
        input[19] = 2;
        input[39] = 9;
        assert_eq!(
            score(7, 3, 2, &Address::with_last_byte(9)),
            keccak256(input)
        );
    }
}
