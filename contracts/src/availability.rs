//! An epoch's availability table as the PoAI manager takes it: rows sorted by node, cut into
//! pages of [`AVAILABILITY_PAGE_ROWS`], each page hashed to a leaf, the leaves folded into one
//! Merkle root. Oracles vote on the root (a vote costs the same at any fleet size) and then
//! record the agreed table page by page, each page proven against the root; this module
//! computes the root, the pages and their proofs exactly as `PoAIManager` checks them.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;

/// Rows of one page (`PoAIManager.AVAILABILITY_PAGE_ROWS`; a contract test holds them equal).
pub const AVAILABILITY_PAGE_ROWS: usize = 128;

/// Gas a page transaction may use besides its rows: the call, the proof, the page's bit.
const PAGE_GAS_BASE: u64 = 150_000;
/// Gas one row may use at most: a node measured and minted for the first time, its licence's
/// owner holding no R1 yet (four storage slots written from zero, two registry reads, an
/// event); about 92 k by the contracts' code.
const PAGE_GAS_PER_ROW: u64 = 110_000;

/// The gas limit a page of `rows` rows is sent with, instead of an estimate: estimating runs a
/// page of first-time mints (≈ 11 M gas for a full page) at least twice more on the chain
/// node, which at an epoch's end at 10,000 nodes kept it from everything else. A full page's
/// limit (≈ 14 M) fits a 30 M block.
pub fn page_gas_limit(rows: usize) -> u64 {
    PAGE_GAS_BASE + PAGE_GAS_PER_ROW * u64::try_from(rows).unwrap_or(u64::MAX)
}

/// One epoch's table with its Merkle tree, ready to vote on and to record page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityTable {
    epoch: u64,
    nodes: Vec<Address>,
    bytes: Vec<u8>,
    /// Level 0 holds the page leaves, the last level the root alone.
    levels: Vec<Vec<B256>>,
}

impl AvailabilityTable {
    /// The table of `epoch` from one availability byte per node (sorted here; a node named
    /// twice keeps its last byte).
    pub fn new(epoch: u64, rows: impl IntoIterator<Item = (Address, u8)>) -> Self {
        let sorted: BTreeMap<Address, u8> = rows.into_iter().collect();
        let (nodes, bytes): (Vec<Address>, Vec<u8>) = sorted.into_iter().unzip();
        let leaves: Vec<B256> = nodes
            .chunks(AVAILABILITY_PAGE_ROWS)
            .zip(bytes.chunks(AVAILABILITY_PAGE_ROWS))
            .enumerate()
            .map(|(page, (nodes, bytes))| page_hash(epoch, page, nodes, bytes))
            .collect();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => keccak256([left.as_slice(), right.as_slice()].concat()),
                    [alone] => *alone,
                    _ => B256::ZERO,
                })
                .collect();
            levels.push(above);
        }
        Self {
            epoch,
            nodes,
            bytes,
            levels,
        }
    }

    /// The epoch the table measures.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many nodes the table holds.
    pub fn rows(&self) -> usize {
        self.nodes.len()
    }

    /// How many pages the table is recorded in.
    pub fn pages(&self) -> usize {
        self.levels[0].len()
    }

    /// The Merkle root over the page leaves (zero for an empty table, which is never voted).
    pub fn root(&self) -> B256 {
        self.levels
            .last()
            .and_then(|level| level.first())
            .copied()
            .unwrap_or(B256::ZERO)
    }

    /// The nodes and bytes of page `page` (empty past the last page).
    pub fn page(&self, page: usize) -> (&[Address], &[u8]) {
        let start = (page * AVAILABILITY_PAGE_ROWS).min(self.nodes.len());
        let end = (start + AVAILABILITY_PAGE_ROWS).min(self.nodes.len());
        (&self.nodes[start..end], &self.bytes[start..end])
    }

    /// The sibling hashes from page `page`'s leaf up to the root; a level where the page's
    /// branch is the last node without a partner contributes none.
    pub fn proof(&self, page: usize) -> Vec<B256> {
        let mut proof = Vec::new();
        let mut index = page;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            if let Some(hash) = level.get(sibling) {
                proof.push(*hash);
            }
            index /= 2;
        }
        proof
    }
}

/// The leaf of one page: `keccak256(abi.encode(epoch, page, nodes, availability))`, as
/// `PoAIManager.availabilityPageHash` computes it.
pub fn page_hash(epoch: u64, page: usize, nodes: &[Address], bytes: &[u8]) -> B256 {
    let availability: Vec<U256> = bytes.iter().map(|b| U256::from(*b)).collect();
    keccak256(
        (
            U256::from(epoch),
            U256::from(page),
            nodes.to_vec(),
            availability,
        )
            .abi_encode_params(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(epoch: u64, rows: usize) -> AvailabilityTable {
        AvailabilityTable::new(
            epoch,
            (0..rows).map(|i| {
                (
                    Address::left_padding_from(&(i as u64 + 1).to_be_bytes()),
                    i as u8,
                )
            }),
        )
    }

    /// The root a page and its proof lead to, walked the way the contract walks it.
    fn root_from(leaf: B256, mut index: usize, mut width: usize, proof: &[B256]) -> Option<B256> {
        let mut node = leaf;
        let mut used = 0;
        while width > 1 {
            if index % 2 == 1 || index + 1 < width {
                let sibling = proof.get(used)?;
                used += 1;
                node = if index % 2 == 1 {
                    keccak256([sibling.as_slice(), node.as_slice()].concat())
                } else {
                    keccak256([node.as_slice(), sibling.as_slice()].concat())
                };
            }
            index /= 2;
            width = width.div_ceil(2);
        }
        (used == proof.len()).then_some(node)
    }

    #[test]
    fn pages_hold_page_rows_and_the_last_the_rest() {
        let t = table(7, 300);
        assert_eq!(t.pages(), 3);
        assert_eq!(t.page(0).0.len(), 128);
        assert_eq!(t.page(2).0.len(), 44);
        assert_eq!(t.page(3).0.len(), 0);
        assert_eq!(
            t.page(1).0[0],
            Address::left_padding_from(&129u64.to_be_bytes())
        );
    }

    #[test]
    fn one_page_is_its_own_root_and_needs_no_proof() {
        let t = table(1, 5);
        let (nodes, bytes) = t.page(0);
        assert_eq!(t.root(), page_hash(1, 0, nodes, bytes));
        assert!(t.proof(0).is_empty());
    }

    #[test]
    fn the_root_commits_to_the_epoch_and_every_byte() {
        let a = table(3, 200);
        assert_ne!(a.root(), table(4, 200).root());
        let mut rows: Vec<(Address, u8)> = a.nodes.iter().copied().zip(a.bytes.clone()).collect();
        rows[150].1 ^= 1;
        assert_ne!(a.root(), AvailabilityTable::new(3, rows).root());
    }

    proptest! {
        #[test]
        fn every_page_proves_against_the_root_and_no_other_page_does(rows in 1usize..3_000, pick in 0usize..64) {
            let t = table(9, rows);
            let page = pick % t.pages();
            let (nodes, bytes) = t.page(page);
            let leaf = page_hash(9, page, nodes, bytes);
            prop_assert_eq!(root_from(leaf, page, t.pages(), &t.proof(page)), Some(t.root()));
            if t.pages() > 1 {
                let other = (page + 1) % t.pages();
                prop_assert_ne!(root_from(leaf, other, t.pages(), &t.proof(page)), Some(t.root()));
            }
        }
    }
}
