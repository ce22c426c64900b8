//! The Deeploy API door of the oracle: where CSPs' resources enter and where the reconcile loops
//! find them.
//!
//! * [`store`]: the durable resource store (RocksDB), with generations, resource versions,
//!   two-phase deletion, status written only by the reconcilers, and change notification.
//! * [`apply`]: apply, delete, get and list as a plain library API (validation against the set
//!   and the store, tenancy, immutable fields, all-or-nothing writes), shared by the HTTP API and
//!   the Kubernetes adapter.
//! * [`auth`]: how every API request is signed by the CSP's key and checked.
//! * [`http`]: the HTTP API over the library calls, with its rate limits.
//! * [`serve`]: the hardened HTTP server (connection cap, header/body/request deadlines).
//! * [`claims`]: who may claim a namespace nobody owns yet.
//! * [`quotas`]: how much one owner may keep in the store.
//! * [`ratelimit`]: token buckets per signer and per peer.
//! * [`kinds`]: the names a kind goes by in URLs and on the command line.
//! * [`object`]: the stored form of a resource.
//! * [`wire`]: the JSON bodies the API and `r1ctl` exchange.
//! * [`writes`]: the hook every authenticated apply and delete runs through (ordering, relays).

pub mod apply;
pub mod auth;
pub mod claims;
pub mod http;
pub mod kinds;
pub mod object;
pub mod quotas;
pub mod ratelimit;
pub mod serve;
pub mod store;
pub mod wire;
pub mod writes;

mod rules;
