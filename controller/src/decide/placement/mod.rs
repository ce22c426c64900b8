//! Where each replica of a job runs: the same answer from every honest oracle that sees the
//! same nodes, stable when unrelated nodes come and go, and sticky for replicas already running.
//!
//! * [`fit`]: what a replica needs ([`Demand`]), what a node offers ([`Candidate`]) and why a
//!   node cannot take a replica ([`Rejection`]).
//! * [`rank`]: rendezvous (highest-random-weight) scores.
//! * [`place`](mod@place): the placement itself, for one job or several sharing the nodes.

pub mod fit;
pub mod place;
pub mod rank;

pub use fit::{Candidate, Demand, Rejection, Rejections};
pub use place::{Candidates, Placement, PlacementRequest, Unplaceable, place, place_jobs};
pub use rank::score;
