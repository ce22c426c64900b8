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

/// How often the node reads its licence again.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest wait for the chain's answers.
const CHAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the chain says of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Linked to a licence: oracles may give it work.
    Linked {
        /// The licence.
        licence: u64,
        /// Its owner, paid for the node's work.
        owner: Address,
        /// USDC units the node earned and its owner has not claimed.
        unclaimed: u64,
    },
    /// On no licence: oracles give it no work.
    Unlinked,
    /// Blacklisted by governance: never validated, never paid.
    Blacklisted,
    /// Suspended by governance: no new work and no PoA until epoch `until_epoch` starts.
    Suspended {
        /// The first epoch the node may work again.
        until_epoch: u64,
    },
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Standing::Linked {
                licence,
                owner,
                unclaimed,
            } => write!(
                f,
                "linked to licence {licence} of {owner}; {unclaimed} USDC units earned and not claimed"
            ),
            Standing::Unlinked => f.write_str(
                "linked to no licence: the oracles give it no work (link it: `r1-node sign-link` \
                 here, then `r1ctl licence link` as the licence's owner)",
            ),
            Standing::Blacklisted => {
                f.write_str("blacklisted by governance: the oracles give it no work")
            }
            Standing::Suspended { until_epoch } => write!(
                f,
                "suspended by governance until epoch {until_epoch}: the oracles give it no work \
                 and it earns no PoA until then"
            ),
        }
    }
}

/// Reads what the chain says of node `me`.
pub async fn standing(suite: &Suite, me: Address) -> Result<Standing, r1_contracts::Error> {
    if suite
        .manager()
        .isBlacklisted(me)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?
    {
        return Ok(Standing::Blacklisted);
    }
    let until_epoch = suite
        .manager()
        .suspendedUntilEpoch(me)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let until_epoch = u64::try_from(until_epoch).unwrap_or(u64::MAX);
    if suite.current_epoch().await? < until_epoch {
        return Ok(Standing::Suspended { until_epoch });
    }
    let licence = suite
        .node_deed()
        .licenceOfNode(me)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    if licence.is_zero() {
        return Ok(Standing::Unlinked);
    }
    let owner = suite
        .node_deed()
        .ownerOf(licence)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let unclaimed = suite.pending_rewards(me).await?;
    Ok(Standing::Linked {
        licence: u64::try_from(licence).unwrap_or(u64::MAX),
        owner,
        unclaimed: u64::try_from(unclaimed).unwrap_or(u64::MAX),
    })
}

/// Reads the node's standing at start and every [`RECHECK`], records it in `state` (for
/// `r1ctl node info`) and logs it whenever it changes: an error while the node is on no
/// licence, blacklisted or suspended, so its operator learns why no work comes.
pub async fn watch(
    chain: crate::config::ChainConfig,
    identity: Identity,
    state: std::sync::Arc<crate::state::NodeState>,
) {
    let me = identity.address();
    let mut last: Option<String> = None;
    loop {
        let read = async {
            let suite =
                Suite::attach(&chain.rpc_url, identity.signer().clone(), chain.manager).await?;
            standing(&suite, me).await
        };
        let (text, good) = match tokio::time::timeout(CHAIN_TIMEOUT, read).await {
            Ok(Ok(standing)) => {
                let good = matches!(standing, Standing::Linked { .. });
                (format!("this node ({me}) is {standing}"), good)
            }
            Ok(Err(e)) => (
                format!("cannot read this node's licence from the chain: {e}"),
                false,
            ),
            Err(_) => (
                format!(
                    "cannot read this node's licence: the chain did not answer within {CHAIN_TIMEOUT:?}"
                ),
                false,
            ),
        };
        if last.as_deref() != Some(text.as_str()) {
            if good {
                tracing::info!("{text}");
            } else {
                tracing::error!("{text}");
            }
            state.set_licence(text.clone());
            last = Some(text);
        }
        tokio::time::sleep(RECHECK).await;
    }
}
