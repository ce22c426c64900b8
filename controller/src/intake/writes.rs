//! The order CSP writes take: a hook the API calls around every authenticated apply or delete,
//! with the request exactly as the CSP signed it. The oracle's hook refuses a request older
//! than one already recorded for an object it touches, records the ones that succeed, and
//! relays them to the other oracles (see `crate::oracle::relay`); without a hook, writes run
//! as they come.

use axum::response::Response;
use futures_util::future::BoxFuture;
use r1_protocol::messages::RelayedRequest;

/// Runs around every authenticated write.
pub trait WriteHook: Send + Sync + std::fmt::Debug {
    /// Runs `handle` (the API's handling of `write`) when `write` may go ahead, and returns its
    /// response, or returns a refusal without running it.
    fn around<'a>(
        &'a self,
        write: RelayedRequest,
        handle: BoxFuture<'a, Response>,
    ) -> BoxFuture<'a, Response>;
}

/// Whether `method` on `path` is a write the hook sees: an apply or a delete.
pub fn is_write(method: &str, path: &str) -> bool {
    (method == "POST" && path == "/v1/apply") || method == "DELETE"
}
