//! Proposal hashes and round keys, byte-for-byte as `PoAIManager.sol` computes them.
//!
//! * node set: `keccak256(abi.encodePacked(address[] nodes))` — packed arrays pad each element
//!   to 32 bytes, so this is the concatenation of the left-padded addresses;
//! * availability table: `keccak256(abi.encode("availability", address[] nodes, uint8[] values))`;
//! * round keys: `keccak256(abi.encode(uint256 jobId, uint256 roundId))` and
//!   `keccak256(abi.encode("availability", uint256 epoch))`.

use alloy_primitives::{Address, B256, U256, keccak256};

/// The tag the contract mixes into availability proposals and round keys.
const AVAILABILITY_TAG: &[u8] = b"availability";

/// A submission the contract would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// Nodes must be strictly ascending (the contract's `NodesNotSorted`).
    #[error("node list is not strictly ascending at index {index}")]
    NotSorted {
        /// First index whose node is not greater than the previous one.
        index: usize,
    },
    /// Node and availability arrays differ in length (`LengthMismatch`).
    #[error("{nodes} nodes but {values} availability values")]
    LengthMismatch {
        /// Number of nodes.
        nodes: usize,
        /// Number of availability bytes.
        values: usize,
    },
}

/// Nodes sorted ascending without duplicates: the form the contract accepts.
pub fn sorted_node_set(nodes: impl IntoIterator<Item = Address>) -> Vec<Address> {
    let mut sorted: Vec<Address> = nodes.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

fn check_sorted(nodes: &[Address]) -> Result<(), ProposalError> {
    match nodes.windows(2).position(|pair| pair[1] <= pair[0]) {
        Some(position) => Err(ProposalError::NotSorted {
            index: position + 1,
        }),
        None => Ok(()),
    }
}

fn word(value: usize) -> [u8; 32] {
    U256::from(value).to_be_bytes()
}

/// The proposal hash of a job's node set (`submitNodeUpdate`); empty closes the job.
pub fn node_set_proposal(nodes: &[Address]) -> Result<B256, ProposalError> {
    check_sorted(nodes)?;
    let mut packed = Vec::with_capacity(nodes.len() * 32);
    for node in nodes {
        packed.extend_from_slice(node.into_word().as_slice());
    }
    Ok(keccak256(packed))
}

/// ABI tail of a `string`: length word, then the bytes right-padded to whole words.
fn encode_string_tail(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&word(text.len()));
    out.extend_from_slice(text);
    out.resize(out.len() + (32 - text.len() % 32) % 32, 0);
}

/// The proposal hash of an availability table (`submitAvailability`).
pub fn availability_proposal(
    nodes: &[Address],
    availability: &[u8],
) -> Result<B256, ProposalError> {
    if nodes.len() != availability.len() {
        return Err(ProposalError::LengthMismatch {
            nodes: nodes.len(),
            values: availability.len(),
        });
    }
    check_sorted(nodes)?;
    let n = nodes.len();
    let string_tail = 32 + AVAILABILITY_TAG.len().div_ceil(32) * 32;
    let nodes_offset = 3 * 32 + string_tail;
    let values_offset = nodes_offset + 32 + 32 * n;
    let mut out = Vec::with_capacity(values_offset + 32 + 32 * n);
    out.extend_from_slice(&word(3 * 32));
    out.extend_from_slice(&word(nodes_offset));
    out.extend_from_slice(&word(values_offset));
    encode_string_tail(&mut out, AVAILABILITY_TAG);
    out.extend_from_slice(&word(n));
    for node in nodes {
        out.extend_from_slice(node.into_word().as_slice());
    }
    out.extend_from_slice(&word(n));
    for &value in availability {
        out.extend_from_slice(&word(usize::from(value)));
    }
    Ok(keccak256(out))
}

/// The key of round `round` of job `job_id`'s node-set consensus.
pub fn node_set_round_key(job_id: u64, round: u64) -> B256 {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&U256::from(job_id).to_be_bytes::<32>());
    out.extend_from_slice(&U256::from(round).to_be_bytes::<32>());
    keccak256(out)
}

/// The key of the availability round of `epoch`.
pub fn availability_round_key(epoch: u64) -> B256 {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&word(2 * 32));
    out.extend_from_slice(&U256::from(epoch).to_be_bytes::<32>());
    encode_string_tail(&mut out, AVAILABILITY_TAG);
    keccak256(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_sol_types::{SolType, sol_data};
    use proptest::prelude::*;

    type AvailabilityArgs = (
        sol_data::String,
        sol_data::Array<sol_data::Address>,
        sol_data::Array<sol_data::Uint<8>>,
    );

    fn node(byte: u8) -> Address {
        Address::with_last_byte(byte)
    }

    #[test]
    fn node_set_hash_pads_each_address() {
        let nodes = [node(1), node(2)];
        let mut expected = [0u8; 64];
        expected[31] = 1;
        expected[63] = 2;
        assert_eq!(node_set_proposal(&nodes), Ok(keccak256(expected)));
        assert_eq!(node_set_proposal(&[]), Ok(keccak256([])));
    }

    #[test]
    fn unsorted_or_duplicate_nodes_are_refused() {
        assert_eq!(
            node_set_proposal(&[node(2), node(1)]),
            Err(ProposalError::NotSorted { index: 1 })
        );
        assert_eq!(
            node_set_proposal(&[node(1), node(2), node(2)]),
            Err(ProposalError::NotSorted { index: 2 })
        );
        assert_eq!(
            availability_proposal(&[node(1)], &[1, 2]),
            Err(ProposalError::LengthMismatch {
                nodes: 1,
                values: 2
            })
        );
        assert_eq!(
            sorted_node_set([node(3), node(1), node(3)]),
            vec![node(1), node(3)]
        );
    }

    #[test]
    fn round_keys_match_abi_encode() {
        let expected = keccak256(
            <(sol_data::Uint<256>, sol_data::Uint<256>)>::abi_encode_params(&(
                U256::from(7),
                U256::from(3),
            )),
        );
        assert_eq!(node_set_round_key(7, 3), expected);
        let expected = keccak256(
            <(sol_data::String, sol_data::Uint<256>)>::abi_encode_params(&(
                "availability".to_owned(),
                U256::from(42),
            )),
        );
        assert_eq!(availability_round_key(42), expected);
    }

    proptest! {
        #[test]
        fn node_set_hash_matches_abi_encode_packed(raw in proptest::collection::vec(any::<[u8; 20]>(), 0..8)) {
            let nodes = sorted_node_set(raw.into_iter().map(Address::from));
            let expected = keccak256(sol_data::Array::<sol_data::Address>::abi_encode_packed(&nodes));
            prop_assert_eq!(node_set_proposal(&nodes), Ok(expected));
        }

        #[test]
        fn availability_hash_matches_abi_encode(entries in proptest::collection::btree_map(any::<[u8; 20]>(), any::<u8>(), 0..8)) {
            let nodes: Vec<Address> = entries.keys().copied().map(Address::from).collect();
            let values: Vec<u8> = entries.values().copied().collect();
            let expected = keccak256(AvailabilityArgs::abi_encode_params(&("availability".to_owned(), nodes.clone(), values.clone())));
            prop_assert_eq!(availability_proposal(&nodes, &values), Ok(expected));
        }
    }
}
