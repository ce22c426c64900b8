//! Linking a node to a licence (`NodeDeed.linkNode`): the EIP-712 record the node and an oracle
//! both sign, computed here exactly as the contract computes it (`linkDigest`), so each signer
//! knows what it signs without trusting a chain read beyond the node's nonce.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

use crate::error::{Error, Result};

sol! {
    /// The record `NodeDeed.LINK_TYPEHASH` names.
    struct LinkNode {
        uint256 licenceId;
        address owner;
        address node;
        uint256 nonce;
        uint256 deadline;
    }
}

/// What a link is about: which node joins which licence of which owner, on which deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTerms {
    /// The chain the Node Deed lives on.
    pub chain_id: u64,
    /// The Node Deed contract.
    pub node_deed: Address,
    /// The licence.
    pub licence_id: u64,
    /// The licence's owner, who sends the link.
    pub owner: Address,
    /// The node.
    pub node: Address,
    /// The node's link nonce (`NodeDeed.linkNonce(node)`): links it has signed before.
    pub nonce: u64,
    /// Unix seconds after which the signatures are refused.
    pub deadline: u64,
}

impl LinkTerms {
    /// The digest both signatures are over.
    pub fn digest(&self) -> B256 {
        let domain: Eip712Domain = eip712_domain! {
            name: "Ratio1 Node Deed",
            version: "1",
            chain_id: self.chain_id,
            verifying_contract: self.node_deed,
        };
        LinkNode {
            licenceId: U256::from(self.licence_id),
            owner: self.owner,
            node: self.node,
            nonce: U256::from(self.nonce),
            deadline: U256::from(self.deadline),
        }
        .eip712_signing_hash(&domain)
    }

    /// `signer`'s signature of the terms (65 bytes: r, s, v).
    pub fn sign(&self, signer: &PrivateKeySigner) -> Result<Bytes> {
        let signature = signer
            .sign_hash_sync(&self.digest())
            .map_err(|e| Error::Signing(e.to_string()))?;
        Ok(Bytes::from(signature.as_bytes().to_vec()))
    }

    /// Who signed `signature` of the terms, if it is a signature at all.
    pub fn signer_of(&self, signature: &[u8]) -> Option<Address> {
        let signature = alloy::primitives::Signature::try_from(signature).ok()?;
        signature.recover_address_from_prehash(&self.digest()).ok()
    }
}

/// The node's and an oracle's signatures of [`LinkTerms`]: what `NodeDeed.linkNode` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProof {
    /// Unix seconds after which the signatures are refused.
    pub deadline: u64,
    /// The node's signature.
    pub node_signature: Bytes,
    /// An oracle's signature.
    pub oracle_signature: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(node: Address) -> LinkTerms {
        LinkTerms {
            chain_id: 31_337,
            node_deed: Address::repeat_byte(0xdd),
            licence_id: 7,
            owner: Address::repeat_byte(0x0e),
            node,
            nonce: 0,
            deadline: 1_800_000_000,
        }
    }

    #[test]
    fn a_signature_names_its_signer_for_exactly_the_terms_signed() {
        let key = PrivateKeySigner::random();
        let signed = terms(key.address());
        let signature = signed.sign(&key).expect("sign");
        assert_eq!(signature.len(), 65);
        assert_eq!(signed.signer_of(&signature), Some(key.address()));
        for changed in [
            LinkTerms { nonce: 1, ..signed },
            LinkTerms {
                licence_id: 8,
                ..signed
            },
            LinkTerms {
                owner: Address::repeat_byte(0x0f),
                ..signed
            },
            LinkTerms {
                chain_id: 1,
                ..signed
            },
            LinkTerms {
                deadline: signed.deadline + 1,
                ..signed
            },
        ] {
            assert_ne!(
                changed.signer_of(&signature),
                Some(key.address()),
                "{changed:?}"
            );
        }
        assert_eq!(signed.signer_of(&signature[..64]), None);
    }
}
