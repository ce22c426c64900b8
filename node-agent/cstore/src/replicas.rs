//! The other replicas, as the Redis server asks them about a connection's writes: Redis's
//! `WAIT numreplicas timeout` answers how many replicas hold every write the connection made,
//! waiting until that many do or the timeout passes. The node agent answers over the
//! peer-to-peer layer; a store on its own has no other replica.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::engine::Written;

/// A count of replicas, to come.
pub type Confirming<'a> = Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// The other replicas of this store.
pub trait Replicas: Send + Sync {
    /// How many other replicas hold every one of `writes` (that version or a newer one),
    /// answering once `wanted` do or after `timeout`.
    fn confirm(&self, writes: Vec<Written>, wanted: usize, timeout: Duration) -> Confirming<'_>;
}

/// No other replica: `WAIT` answers 0 at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl Replicas for Alone {
    fn confirm(&self, _: Vec<Written>, _: usize, _: Duration) -> Confirming<'_> {
        Box::pin(async { 0 })
    }
}
