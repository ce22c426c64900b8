//! Images from registries. A workload's image that is neither in containerd nor in the node's
//! archives is pulled in the background while the workload reports `pulling`:
//!
//! * [`pull`]: one pull, start to end — the manifest (the node's platform picked from an
//!   index), the config and the layers downloaded and verified by [`r1_registry`], then stored
//!   in containerd under the reference the job names (`crate::runtime::images`).
//! * [`from_peers`], [`share`]: blobs taken from peers that hold them or are downloading
//!   them, before the registry, and offered to peers in turn (public images only).
//! * [`puller`]: the pulls in flight, their progress, and failures retried with backoff
//!   (`imagePullBackOff`), asked by the supervisor on each pass.
//! * [`gc`]: the image quota checked before a pull, and pulled images no workload has used
//!   for a while removed.

pub mod from_peers;
pub mod gc;
pub mod pull;
pub mod puller;
pub mod share;
