//! Why a reconcile of a custom resource failed. Every failure is retried with backoff; none
//! changes the store.

use crate::intake::apply::ApplyError;
use crate::intake::store::StoreError;

/// A failed reconcile or a failed start of the adapter.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The Kubernetes API refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The resource store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An apply or delete failed for a reason the adapter cannot turn into a condition.
    #[error(transparent)]
    Apply(ApplyError),
    /// The cluster handed over an object the adapter cannot work with.
    #[error("{0}")]
    Object(String),
}
