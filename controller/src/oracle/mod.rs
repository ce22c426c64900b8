//! The running oracle (`r1-oracle run`): the I/O around [`crate::decide`].
//!
//! * [`runtime`]: start-up, the Deeploy API, the broker link and the reconcile pass.
//! * [`jobs`]: each job's pass carried out: placements, deploys, stops, votes, status.
//! * [`quiet`]: settled jobs left alone while nothing about them changes.
//! * [`economy`]: closure, rewards, Proof of Availability, escrow and project status.
//! * [`chain`]: the chain snapshot a pass decides from.
//! * [`chain_watch`]: a pass woken as soon as the chain records a job change.
//! * [`cstore_rules`]: the CSTORE access rules published to the nodes, sealed, when changed.
//! * [`secrets`]: a job's sealed values opened by this oracle and resealed to one node.
//! * [`tunnels`]: each `Tunnel`'s status from the nodes' reports of its clients.
//! * [`votes`]: the node-set votes a pass decided, cast together in batched transactions.
//! * [`services`]: each project's service table sent to the nodes running its replicas.
//! * [`oracle_keys`]: the oracles' public keys, learned from their signatures, which the API
//!   lists so that CSPs can seal values to every oracle.
//! * [`relay`]: CSP requests relayed between oracles.
//! * [`sessions`]: CSPs' logs and exec sessions on replicas, opened on the nodes through the
//!   broker.
//! * [`state`]: the oracle's durable memory (placements, votes, relayed requests, rollouts).
//! * [`mesh`], [`broker`], [`metrics`]: MQTT link, embedded broker, Prometheus metrics.
//! * [`admission`]: which broker messages are read at all (oracle channels, rates, lanes).
//! * [`answers`]: chain answers kept so strangers cost a bounded number of calls per pass.

pub mod admission;
pub mod answers;
pub mod broker;
pub mod chain;
pub mod chain_watch;
pub mod cstore_rules;
pub mod economy;
pub mod jobs;
pub mod mesh;
pub mod metrics;
pub mod oracle_keys;
pub mod quiet;
pub mod relay;
pub mod runtime;
pub mod secrets;
pub mod services;
pub mod sessions;
pub mod state;
pub mod tunnels;
pub mod votes;
