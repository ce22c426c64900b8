//! Moving blocks between nodes, in pure parts the network code drives:
//!
//! * [`wire`]: the bounded request and answer bytes of the `r1fs` request-response protocol.
//! * [`fetch`]: a fetch into the local store over any [`fetch::Peers`], and the answer to a
//!   peer's request.
//! * [`schedule`]: which blocks to ask which provider for, windows per provider, every block
//!   verified, wrong bytes penalised, failed requests moved to other providers.

pub mod fetch;
pub mod schedule;
pub mod wire;

pub use fetch::{FetchError, Fetched, Peers, answer, fetch};
pub use schedule::{MAX_FAILURES, Outcome, Schedule, Stuck};
pub use wire::WireError;
