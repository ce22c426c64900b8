//! Thousands of nodes licensed on the test chain in about a hundred transactions: the
//! development contract `BulkLicences` buys Node Deeds with R1 minted to it and links each
//! node with the node's and an oracle's signatures, through the Node Deed's public functions
//! as any operator would (see `contracts/solidity/dev/BulkLicences.sol`).

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use r1_contracts::LinkTerms;
use r1_contracts::bindings::BulkLicences;
use r1_contracts::tx::confirm;
use r1_contracts::units::r1_units;

use crate::chain::{ChainError, TestChain};

/// Licences bought per transaction (each ~170 k gas, in blocks of 30 M).
const BUY_BATCH: usize = 100;
/// Links per transaction (each ~110 k gas with its two signature checks).
const LINK_BATCH: usize = 150;
/// The most R1 a licence costs on the development tiers (100, then 200 R1).
const MAX_LICENCE_R1: u64 = 200;
/// How long the link signatures stay good.
const LINK_VALID_SECONDS: u64 = 3_600;

/// Licenses every node of `nodes` (fresh keys, on no licence yet) with `oracle`'s attestation
/// (a registered oracle's key); returns the licence ids, in the nodes' order.
pub fn license_in_bulk(
    chain: &TestChain,
    nodes: &[PrivateKeySigner],
    oracle: &PrivateKeySigner,
) -> Result<Vec<u64>, ChainError> {
    let gov = chain.gov();
    chain.block_on(async {
        let deployment = gov.deployment();
        let bulk =
            BulkLicences::deploy(gov.provider().clone(), deployment.node_deed, deployment.r1)
                .await
                .map_err(r1_contracts::Error::from)?;
        let count = u64::try_from(nodes.len()).unwrap_or(u64::MAX);
        gov.mint_r1(
            *bulk.address(),
            r1_units(MAX_LICENCE_R1) * U256::from(count),
        )
        .await?;
        let mut licences = Vec::with_capacity(nodes.len());
        for batch in nodes.chunks(BUY_BATCH) {
            let size = U256::from(batch.len());
            let buy = bulk.buy(size, r1_units(MAX_LICENCE_R1));
            let first = buy.call().await.map_err(r1_contracts::Error::from)?;
            confirm(buy).await?;
            let first = u64::try_from(first).unwrap_or(u64::MAX);
            licences.extend((0..batch.len() as u64).map(|i| first + i));
        }
        let deadline = chain.devchain().timestamp().await? + LINK_VALID_SECONDS;
        for (batch, ids) in nodes.chunks(LINK_BATCH).zip(licences.chunks(LINK_BATCH)) {
            let mut node_signatures = Vec::with_capacity(batch.len());
            let mut oracle_signatures = Vec::with_capacity(batch.len());
            for (node, licence) in batch.iter().zip(ids) {
                let terms = LinkTerms {
                    chain_id: chain.chain_id(),
                    node_deed: deployment.node_deed,
                    licence_id: *licence,
                    owner: *bulk.address(),
                    node: node.address(),
                    nonce: 0,
                    deadline,
                };
                node_signatures.push(terms.sign(node)?);
                oracle_signatures.push(terms.sign(oracle)?);
            }
            let addresses: Vec<Address> = batch.iter().map(PrivateKeySigner::address).collect();
            let ids: Vec<U256> = ids.iter().map(|id| U256::from(*id)).collect();
            confirm(bulk.link(
                ids,
                addresses,
                U256::from(deadline),
                node_signatures,
                oracle_signatures,
            ))
            .await?;
        }
        Ok::<_, ChainError>(licences)
    })
}
