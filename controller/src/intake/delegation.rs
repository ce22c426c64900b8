//! Writes on behalf of an escrow's owner by a delegate key: a request signed by the delegate
//! names the owner with `?owner=0x…` in its path (so the owner is part of what is signed), and
//! acts as the owner only while the chain says the delegate holds the owner's escrow's create
//! permission. This is how a Kubernetes-mode oracle's mirrored changes, or a pipeline's
//! `r1ctl --owner`, reach every oracle with no CSP key: each oracle checks the delegation
//! itself, on the HTTP door and on relayed requests alike, so a revoked delegate is refused
//! everywhere.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use futures_util::future::BoxFuture;
use r1_contracts::{Permissions, Suite};

use crate::intake::chain_answers::ChainAnswers;

/// The query parameter naming the owner a delegate acts for.
pub const OWNER_PARAM: &str = "owner";

/// Why a request cannot act for the owner it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// `?owner=` is not an address.
    #[error("?{OWNER_PARAM}={0:?} is not an EVM address")]
    BadOwner(String),
    /// The chain says the signer holds no create permission on the owner's escrow.
    #[error(
        "{delegate} is not a delegate of {owner}'s escrow with the create permission (r1ctl escrow delegate)"
    )]
    NotDelegate {
        /// The owner named.
        owner: Address,
        /// The signer.
        delegate: Address,
    },
    /// The delegation cannot be checked (no chain, or the chain did not answer).
    #[error("cannot check that {delegate} may act for {owner}: {reason}")]
    Unchecked {
        /// The owner named.
        owner: Address,
        /// The signer.
        delegate: Address,
        /// Why.
        reason: String,
    },
}

/// The owner named by `path_and_query`'s `?owner=`, if any.
pub fn owner_in(path_and_query: &str) -> Result<Option<Address>, DelegationError> {
    let Some((_, query)) = path_and_query.split_once('?') else {
        return Ok(None);
    };
    let Some(value) = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == OWNER_PARAM).then_some(value)
    }) else {
        return Ok(None);
    };
    Address::from_str(value)
        .map(Some)
        .map_err(|_| DelegationError::BadOwner(value.chars().take(64).collect()))
}

/// The path of `path_and_query`, without its query.
pub fn path_of(path_and_query: &str) -> &str {
    path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path)
}

/// Answers whether a key holds an owner's delegation on chain.
pub trait Delegations: fmt::Debug + Send + Sync {
    /// Whether `delegate` holds the create permission on `owner`'s escrow; an error when the
    /// chain cannot tell.
    fn permits(&self, owner: Address, delegate: Address) -> BoxFuture<'_, Result<bool, String>>;
}

/// How long a delegation the chain confirmed is trusted: a revocation takes effect within it.
pub const HELD_TTL: Duration = Duration::from_secs(10);
/// How long a refusal is remembered: a new grant takes effect within it.
const NOT_HELD_TTL: Duration = Duration::from_secs(5);
/// Longest wait for the chain's answer.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Delegations read from each owner's escrow (`delegatePermissions`), cached briefly.
pub struct ChainDelegations {
    suite: Suite,
    answers: ChainAnswers<(Address, Address)>,
}

impl fmt::Debug for ChainDelegations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainDelegations").finish_non_exhaustive()
    }
}

impl ChainDelegations {
    /// Reads through `suite`.
    pub fn new(suite: Suite) -> Self {
        Self {
            suite,
            answers: ChainAnswers::new(HELD_TTL, NOT_HELD_TTL),
        }
    }

    async fn read(&self, owner: Address, delegate: Address) -> Result<bool, String> {
        let escrow = self
            .suite
            .escrow_of(owner)
            .await
            .map_err(|e| e.to_string())?;
        if escrow == Address::ZERO {
            return Ok(false);
        }
        let bits = self
            .suite
            .delegate_permissions(escrow, delegate)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bits & Permissions::CREATE.bits() != 0)
    }
}

impl Delegations for ChainDelegations {
    fn permits(&self, owner: Address, delegate: Address) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            if let Some(held) = self.answers.cached(&(owner, delegate), Instant::now()) {
                return Ok(held);
            }
            let held = tokio::time::timeout(CHAIN_TIMEOUT, self.read(owner, delegate))
                .await
                .map_err(|_| format!("the chain did not answer within {CHAIN_TIMEOUT:?}"))??;
            self.answers
                .remember((owner, delegate), held, Instant::now());
            Ok(held)
        })
    }
}

/// Who a request signed by `signer` for `path_and_query` acts for: the signer, or the owner
/// its `?owner=` names when `delegations` says the signer is that owner's delegate.
pub async fn acting_for(
    signer: Address,
    path_and_query: &str,
    delegations: Option<&dyn Delegations>,
) -> Result<Address, DelegationError> {
    let owner = match owner_in(path_and_query)? {
        Some(owner) if owner != signer => owner,
        _ => return Ok(signer),
    };
    let Some(delegations) = delegations else {
        return Err(DelegationError::Unchecked {
            owner,
            delegate: signer,
            reason: "this oracle reads no chain".into(),
        });
    };
    match delegations.permits(owner, signer).await {
        Ok(true) => Ok(owner),
        Ok(false) => Err(DelegationError::NotDelegate {
            owner,
            delegate: signer,
        }),
        Err(reason) => Err(DelegationError::Unchecked {
            owner,
            delegate: signer,
            reason,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Chain(Vec<(Address, Address)>);

    impl Delegations for Chain {
        fn permits(
            &self,
            owner: Address,
            delegate: Address,
        ) -> BoxFuture<'_, Result<bool, String>> {
            let held = self.0.contains(&(owner, delegate));
            Box::pin(async move { Ok(held) })
        }
    }

    #[test]
    fn the_owner_is_read_from_the_signed_query() {
        let owner = Address::repeat_byte(0xaa);
        assert_eq!(owner_in("/v1/apply").unwrap(), None);
        assert_eq!(
            owner_in(&format!("/v1/apply?owner={owner}")).unwrap(),
            Some(owner)
        );
        assert_eq!(
            owner_in(&format!("/v1/djob?namespace=a&owner={owner:#x}")).unwrap(),
            Some(owner)
        );
        assert!(owner_in("/v1/apply?owner=nope").is_err());
        assert_eq!(
            path_of("/v1/deeployjobs/a/b?owner=0x1"),
            "/v1/deeployjobs/a/b"
        );
        assert_eq!(path_of("/v1/apply"), "/v1/apply");
    }

    #[tokio::test]
    async fn only_a_delegate_the_chain_knows_acts_for_the_owner() {
        let owner = Address::repeat_byte(0xaa);
        let delegate = Address::repeat_byte(0xdd);
        let stranger = Address::repeat_byte(0x55);
        let chain = Chain(vec![(owner, delegate)]);
        let path = format!("/v1/apply?owner={owner}");
        assert_eq!(acting_for(delegate, &path, Some(&chain)).await, Ok(owner));
        assert_eq!(
            acting_for(stranger, &path, Some(&chain)).await,
            Err(DelegationError::NotDelegate {
                owner,
                delegate: stranger
            })
        );
        assert_eq!(
            acting_for(owner, &path, None).await,
            Ok(owner),
            "the owner naming itself needs no chain"
        );
        assert!(matches!(
            acting_for(delegate, &path, None).await,
            Err(DelegationError::Unchecked { .. })
        ));
        assert_eq!(acting_for(stranger, "/v1/apply", None).await, Ok(stranger));
    }
}
