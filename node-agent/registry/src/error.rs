//! What can go wrong pulling from a registry, and whether trying later may help.

use std::time::Duration;

use r1_protocol::image_ref::ImageRefError;

/// Why a manifest or blob could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference, tag or digest is malformed (or uses a digest algorithm other than
    /// sha256).
    #[error(transparent)]
    InvalidReference(#[from] ImageRefError),
    /// The repository, tag, manifest or blob does not exist (404, `MANIFEST_UNKNOWN`,
    /// `NAME_UNKNOWN`, `BLOB_UNKNOWN`).
    #[error("{image}: {what} not found in the registry")]
    NotFound {
        /// The image asked for.
        image: String,
        /// What is missing: `repository …`, `manifest …` or `blob …`.
        what: String,
    },
    /// The registry refused anonymous access (401): the job needs a pull secret. Docker Hub
    /// answers the same for a repository that does not exist.
    #[error(
        "{image} needs a pull secret: the registry refused anonymous access (or the repository does not exist)"
    )]
    CredentialsRequired {
        /// The image asked for.
        image: String,
    },
    /// The registry refused the credentials given (401 or 403), or refused access outright.
    #[error("{image}: access denied: {detail}")]
    Denied {
        /// The image asked for.
        image: String,
        /// The registry's reason, as far as it gave one.
        detail: String,
    },
    /// No answer: connection refused, DNS, TLS or a timeout, on every attempt.
    #[error("registry {registry} unreachable after {attempts} attempt(s): {detail}")]
    Unreachable {
        /// The registry (or token service) host.
        registry: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure, with its causes.
        detail: String,
    },
    /// The content does not hash to the digest that names it.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for (or announced by the registry).
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A blob is not the size its descriptor says.
    #[error("blob {digest}: expected {expected} bytes, the registry sent {actual}")]
    SizeMismatch {
        /// The blob.
        digest: String,
        /// Its size in the manifest.
        expected: u64,
        /// Bytes announced or received (reading stops at the first byte too many).
        actual: u64,
    },
    /// A response is larger than its limit.
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// Which response.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Any other HTTP status, with the registry's error code and message.
    #[error("{image}: the registry answered HTTP {status}: {detail}")]
    Status {
        /// The image asked for.
        image: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code and message, or the start of its answer.
        detail: String,
    },
    /// A file could not be written (the message names it).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl RegistryError {
    /// Whether trying again later may succeed: the registry was unreachable, overloaded (429)
    /// or failing (5xx), or a local file could not be written. The node backs off and retries
    /// these; `NotFound` and `Denied` it also retries, but more slowly, as a tag may be pushed
    /// or a secret fixed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Io(_) => true,
            Self::Status { status, .. } => retried_status(*status),
            _ => false,
        }
    }

    /// Whether this client retries the request itself, after a backoff.
    pub(crate) fn is_retried_here(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => retried_status(*status),
            _ => false,
        }
    }
}

/// Overloaded or failing: worth another try.
fn retried_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// A failed attempt, with how long the registry asked to wait before the next.
#[derive(Debug)]
pub(crate) struct Failed {
    /// The failure.
    pub(crate) error: RegistryError,
    /// The registry's `Retry-After`, when it gave one.
    pub(crate) retry_after: Option<Duration>,
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl From<std::io::Error> for Failed {
    fn from(error: std::io::Error) -> Self {
        RegistryError::Io(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_or_not() {
        let status = |status| RegistryError::Status {
            image: "x".to_owned(),
            status,
            detail: String::new(),
        };
        assert!(status(503).is_transient() && status(503).is_retried_here());
        assert!(status(429).is_transient() && status(429).is_retried_here());
        assert!(!status(400).is_transient());
        let io = RegistryError::Io(std::io::Error::other("disk full"));
        assert!(io.is_transient() && !io.is_retried_here());
        let not_found = RegistryError::NotFound {
            image: "x".to_owned(),
            what: "manifest latest".to_owned(),
        };
        assert!(!not_found.is_transient() && !not_found.is_retried_here());
        let mismatch = RegistryError::DigestMismatch {
            expected: "a".to_owned(),
            actual: "b".to_owned(),
        };
        assert!(!mismatch.is_transient() && !mismatch.is_retried_here());
    }
}
