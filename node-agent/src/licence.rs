//! `r1-node sign-link`: the node's consent to be linked to an operator's licence. The node reads
//! the chain for the terms (the Node Deed behind the PoAI manager, the chain id, its own link
//! nonce), signs them with its key, and prints what its operator sends an oracle to co-sign
//! (`r1ctl licence link`). The key never leaves the node.

use r1_contracts::Suite;
use r1_protocol::Address;
use r1_protocol::identity::Identity;
use r1_protocol::links::LinkAttestRequest;

/// Why the node could not sign.
#[derive(Debug, thiserror::Error)]
pub enum SignLinkError {
    /// The RPC endpoint is not a URL.
    #[error("--rpc-url: {0}")]
    Url(String),
    /// The chain could not be read, or the key could not sign.
    #[error(transparent)]
    Chain(#[from] r1_contracts::Error),
}

/// The node's signed consent to link it to licence `licence_id` of `owner`, good for
/// `valid_seconds` from now.
pub async fn sign_link(
    identity: &Identity,
    rpc_url: &str,
    manager: Address,
    licence_id: u64,
    owner: Address,
    valid_seconds: u64,
) -> Result<LinkAttestRequest, SignLinkError> {
    let url = url::Url::parse(rpc_url).map_err(|e| SignLinkError::Url(e.to_string()))?;
    let suite = Suite::attach(&url, identity.signer().clone(), manager).await?;
    let deadline = r1_protocol::now_ms() / 1_000 + valid_seconds;
    let terms = suite
        .link_terms_for(licence_id, owner, identity.address(), deadline)
        .await?;
    Ok(LinkAttestRequest {
        licence_id,
        owner,
        node: identity.address(),
        nonce: terms.nonce,
        deadline,
        node_signature: terms.sign(identity.signer())?.to_string(),
    })
}
