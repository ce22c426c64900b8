//! An oracle's co-signature of a node link (`POST /v1/licences/attest`): `NodeDeed.linkNode`
//! takes the node's and an oracle's EIP-712 signatures of the same terms. The oracle signs
//! only for the licence's owner, only terms that hold on chain now (the owner holds the
//! licence, the node is on no licence and not blacklisted, the nonce is the node's), only what
//! the node itself signed, and only for a day at most, so a signature it gives cannot be used
//! for another node, owner or licence, nor long after.

use std::fmt;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use futures_util::future::BoxFuture;
use r1_contracts::bindings::NodeDeed;
use r1_contracts::{LinkTerms, Suite};
use r1_protocol::identity::Identity;
use r1_protocol::links::{LinkAttestRequest, LinkAttestation};

/// The longest an attested link stays good: its deadline at most this far ahead.
pub const MAX_VALIDITY_SECONDS: u64 = 24 * 3_600;

/// Longest wait for the chain's answers.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the oracle does not co-sign a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    /// The request is not signed by the licence's owner it names.
    #[error("only the licence's owner {owner} may ask; the request is signed by {caller}")]
    NotOwner {
        /// The owner named.
        owner: Address,
        /// The signer.
        caller: Address,
    },
    /// The deadline is past or too far ahead.
    #[error(
        "the deadline must lie in the next {MAX_VALIDITY_SECONDS} s; it is {deadline} (now {now})"
    )]
    Deadline {
        /// The deadline asked.
        deadline: u64,
        /// Now, unix seconds.
        now: u64,
    },
    /// The node's signature is not the node's signature of these terms.
    #[error("the node signature is not {node}'s signature of these terms")]
    NodeSignature {
        /// The node.
        node: Address,
    },
    /// The chain says the link cannot be made.
    #[error("{0}")]
    Chain(String),
    /// The chain could not be read.
    #[error("the chain cannot be read now: {0}")]
    Unreadable(String),
    /// The oracle could not sign.
    #[error("the oracle cannot sign: {0}")]
    Signing(String),
}

/// What co-signs node links for the API.
pub trait LinkAttestor: fmt::Debug + Send + Sync {
    /// The oracle's signature of `request`'s terms, asked by `caller`, or why not.
    fn attest(
        &self,
        caller: Address,
        request: LinkAttestRequest,
    ) -> BoxFuture<'_, Result<LinkAttestation, LinkRefusal>>;
}

/// The checks that need no chain: the caller is the owner named, the deadline is near, and
/// the node signed exactly `terms`.
pub fn check(
    caller: Address,
    request: &LinkAttestRequest,
    terms: &LinkTerms,
    now_unix: u64,
) -> Result<(), LinkRefusal> {
    if caller != request.owner {
        return Err(LinkRefusal::NotOwner {
            owner: request.owner,
            caller,
        });
    }
    if request.deadline <= now_unix || request.deadline > now_unix + MAX_VALIDITY_SECONDS {
        return Err(LinkRefusal::Deadline {
            deadline: request.deadline,
            now: now_unix,
        });
    }
    let signature = request
        .node_signature
        .strip_prefix("0x")
        .and_then(|hex| alloy_primitives::hex::decode(hex).ok())
        .unwrap_or_default();
    if terms.signer_of(&signature) != Some(request.node) {
        return Err(LinkRefusal::NodeSignature { node: request.node });
    }
    Ok(())
}

/// Attests links on the chain `suite` reads, signing with the oracle's key.
pub struct ChainLinkAttestor {
    suite: Suite,
    identity: Identity,
    chain_id: u64,
}

impl fmt::Debug for ChainLinkAttestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainLinkAttestor")
            .field("oracle", &self.identity.address())
            .finish_non_exhaustive()
    }
}

impl ChainLinkAttestor {
    /// An attestor reading through `suite` on chain `chain_id`, signing as `identity`.
    pub fn new(suite: Suite, identity: Identity, chain_id: u64) -> Self {
        Self {
            suite,
            identity,
            chain_id,
        }
    }

    /// The chain's side of the terms: the owner holds the licence, the node is free and not
    /// blacklisted, and the nonce is the node's next.
    async fn check_chain(&self, request: &LinkAttestRequest) -> Result<(), LinkRefusal> {
        let unreadable = |e: r1_contracts::Error| LinkRefusal::Unreadable(e.to_string());
        let deed = self.suite.node_deed();
        let licence = U256::from(request.licence_id);
        let holder = match deed.ownerOf(licence).call().await {
            Ok(holder) => holder,
            Err(e) => {
                let error = r1_contracts::Error::from(e);
                return Err(if error.revert::<NodeDeed::NodeDeedErrors>().is_some() {
                    LinkRefusal::Chain(format!("licence {} does not exist", request.licence_id))
                } else {
                    unreadable(error)
                });
            }
        };
        if holder != request.owner {
            return Err(LinkRefusal::Chain(format!(
                "licence {} belongs to {holder}",
                request.licence_id
            )));
        }
        let linked = deed
            .licenceOfNode(request.node)
            .call()
            .await
            .map_err(|e| unreadable(e.into()))?;
        if linked != U256::ZERO {
            return Err(LinkRefusal::Chain(format!(
                "node {} is linked to licence {linked}",
                request.node
            )));
        }
        let blacklisted = self
            .suite
            .manager()
            .isBlacklisted(request.node)
            .call()
            .await
            .map_err(|e| unreadable(e.into()))?;
        if blacklisted {
            return Err(LinkRefusal::Chain(format!(
                "node {} is blacklisted",
                request.node
            )));
        }
        let nonce = deed
            .linkNonce(request.node)
            .call()
            .await
            .map_err(|e| unreadable(e.into()))?;
        if nonce != U256::from(request.nonce) {
            return Err(LinkRefusal::Chain(format!(
                "the node's link nonce is {nonce}, not {}",
                request.nonce
            )));
        }
        Ok(())
    }

    async fn attest_now(
        &self,
        caller: Address,
        request: LinkAttestRequest,
    ) -> Result<LinkAttestation, LinkRefusal> {
        let terms = LinkTerms {
            chain_id: self.chain_id,
            node_deed: self.suite.deployment().node_deed,
            licence_id: request.licence_id,
            owner: request.owner,
            node: request.node,
            nonce: request.nonce,
            deadline: request.deadline,
        };
        check(caller, &request, &terms, r1_protocol::now_ms() / 1_000)?;
        tokio::time::timeout(CHAIN_TIMEOUT, self.check_chain(&request))
            .await
            .map_err(|_| {
                LinkRefusal::Unreadable(format!("no answer within {CHAIN_TIMEOUT:?}"))
            })??;
        let signature = terms
            .sign(self.identity.signer())
            .map_err(|e| LinkRefusal::Signing(e.to_string()))?;
        tracing::info!(
            licence = request.licence_id,
            owner = %request.owner,
            node = %request.node,
            "co-signed a node link"
        );
        Ok(LinkAttestation {
            oracle: self.identity.address(),
            oracle_signature: signature.to_string(),
        })
    }
}

impl LinkAttestor for ChainLinkAttestor {
    fn attest(
        &self,
        caller: Address,
        request: LinkAttestRequest,
    ) -> BoxFuture<'_, Result<LinkAttestation, LinkRefusal>> {
        Box::pin(self.attest_now(caller, request))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn signed(node: &Identity, owner: Address) -> (LinkAttestRequest, LinkTerms) {
        let terms = LinkTerms {
            chain_id: 31_337,
            node_deed: Address::repeat_byte(0xdd),
            licence_id: 3,
            owner,
            node: node.address(),
            nonce: 0,
            deadline: NOW + 600,
        };
        let request = LinkAttestRequest {
            licence_id: 3,
            owner,
            node: node.address(),
            nonce: 0,
            deadline: NOW + 600,
            node_signature: terms.sign(node.signer()).unwrap().to_string(),
        };
        (request, terms)
    }

    #[test]
    fn only_the_owner_asks_for_near_terms_the_node_signed() {
        let node = Identity::generate();
        let owner = Address::repeat_byte(0x0e);
        let (request, terms) = signed(&node, owner);
        assert_eq!(check(owner, &request, &terms, NOW), Ok(()));
        assert!(matches!(
            check(Address::repeat_byte(1), &request, &terms, NOW),
            Err(LinkRefusal::NotOwner { .. })
        ));
        for deadline in [NOW, NOW - 1, NOW + MAX_VALIDITY_SECONDS + 1] {
            let late = LinkAttestRequest {
                deadline,
                ..request.clone()
            };
            assert!(matches!(
                check(owner, &late, &terms, NOW),
                Err(LinkRefusal::Deadline { .. })
            ));
        }
        let other = Identity::generate();
        let forged = LinkAttestRequest {
            node_signature: terms.sign(other.signer()).unwrap().to_string(),
            ..request.clone()
        };
        assert!(matches!(
            check(owner, &forged, &terms, NOW),
            Err(LinkRefusal::NodeSignature { .. })
        ));
        let garbage = LinkAttestRequest {
            node_signature: "0xzz".into(),
            ..request.clone()
        };
        assert!(matches!(
            check(owner, &garbage, &terms, NOW),
            Err(LinkRefusal::NodeSignature { .. })
        ));
        // The node signed for licence 3; the same signature does not cover licence 4.
        let elsewhere = LinkTerms {
            licence_id: 4,
            ..terms
        };
        assert!(matches!(
            check(owner, &request, &elsewhere, NOW),
            Err(LinkRefusal::NodeSignature { .. })
        ));
    }
}
