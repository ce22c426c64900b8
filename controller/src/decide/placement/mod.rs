//! Where each replica of a job runs: the same answer from every honest oracle that sees the
//! same nodes, stable when unrelated nodes come and go, sticky for replicas already running,
//! and bounded in work whatever the fleet's size (a replica ranks one shard of it).
//!
//! * [`fit`]: what a replica needs ([`Demand`]), what a node offers ([`Candidate`]) and why a
//!   node cannot take a replica ([`Rejection`]).
//! * [`rank`]: rendezvous (highest-random-weight) scores, and the ring point that picks the
//!   shard of a large fleet a replica ranks.
//! * [`place`](mod@place): the placement itself, for one job or several sharing the nodes.

pub mod fit;
pub mod place;
pub mod rank;

pub use fit::{Candidate, Demand, Rejection, Rejections};
pub use place::{Candidates, Placement, PlacementRequest, Unplaceable, place, place_jobs};
pub use rank::score;
