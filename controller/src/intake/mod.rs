//! The Deeploy API door of the oracle: where CSPs' resources enter and where the reconcile loops
//! find them.
//!
//! * [`store`]: the durable resource store (RocksDB), with generations, resource versions,
//!   two-phase deletion, status written only by the reconcilers, and change notification.
//! * [`apply`]: apply, delete, get and list as a plain library API (validation against the set
//!   and the store, tenancy, immutable fields, all-or-nothing writes), shared by the HTTP API and
//!   the Kubernetes adapter.
//! * [`http`]: the HTTP API over the library calls, with its rate limits.
//! * [`serve`]: the hardened HTTP server (connection cap, header/body/request deadlines).
//! * [`chain_answers`]: yes-or-no chain answers reused briefly.
//! * [`claims`]: who may claim a namespace nobody owns yet; [`delegation`]: writes a delegate key
//!   signs on behalf of an escrow's owner, checked on chain.
//! * [`quotas`]: how much one owner may keep in the store.
//! * [`ratelimit`]: token buckets per signer and per peer.
//! * [`writes`]: the hook every authenticated apply and delete runs through (ordering, relays).
//! * [`sessions`]: a job's logs and commands run in its replicas, through a door to the nodes.
//! * [`links`]: the oracle's co-signature of a node linked to a licence.
//!
//! What the API shares with `r1ctl` lives outside the oracle, so the CLI needs none of this:
//! kind names, object keys, stored objects, apply outcomes and JSON bodies in
//! [`r1_crds::api`], request signing in [`r1_protocol::api_auth`].

pub mod apply;
pub mod chain_answers;
pub mod claims;
pub mod delegation;
pub mod http;
pub mod links;
pub mod quotas;
pub mod ratelimit;
pub mod serve;
pub mod sessions;
pub mod store;
pub mod writes;

mod rules;
