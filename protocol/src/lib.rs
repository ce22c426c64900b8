//! What r1 oracles and nodes say to each other.
//!
//! * [`identity`]: secp256k1 keys and their EVM addresses, the only identity r1 knows.
//! * [`image_ref`]: the container image reference grammar, shared by resource validation and
//!   the node agent's registry client.
//! * [`keyfile`]: keys on disk, readable by their owner only; [`sealed`]: secrets sealed to a
//!   participant's key (ECIES), for credentials that travel over MQTT; [`oracle_sealed`]:
//!   values a CSP seals to every oracle; [`secrets`]: a workload's env values and registry
//!   credentials, resealed by an oracle to the node that runs it; [`docker_config`]: registry
//!   credentials in Docker's config format.
//! * [`envelope`]: the signed envelope every message travels in (EIP-191 over a canonical
//!   encoding), and [`verify`] which refuses forged, unknown, stale, replayed or malformed ones;
//!   [`recovery`]: who signed, for every signature r1 checks.
//! * [`messages`]: heartbeat, deploy and stop commands, job status, oracle observation, the
//!   peer-to-peer roster; [`sessions`]: a CSP's logs and exec sessions on a replica.
//! * [`topics`]: the MQTT topic layout, in one place; [`mqtt`]: client options from a broker URL;
//!   [`broker_auth`]: broker credentials signed by the client's key.
//! * [`broker_acl`]: who may publish and subscribe where, the rules every r1 broker enforces;
//!   [`mosquitto`]: those rules as a mosquitto configuration; [`broker_tls`]: a listener's
//!   certificate and key files.
//! * [`api_auth`]: Deeploy API requests signed by the CSP's key (`r1ctl` signs, oracles verify).
//! * [`node_api`]: the node agent's local gRPC API (generated from `proto/node.proto`).

pub mod api_auth;
pub mod broker_acl;
pub mod broker_auth;
pub mod broker_tls;
pub mod config_file;
pub mod docker_config;
pub mod envelope;
pub mod hex;
pub mod identity;
pub mod image_ref;
pub mod keyfile;
pub mod links;
pub mod messages;
pub mod mosquitto;
pub mod mqtt;
pub mod node_api;
pub mod oracle_sealed;
pub mod recovery;
pub mod sealed;
pub mod secrets;
pub mod services;
pub mod sessions;
pub mod topics;
pub mod verify;

pub use alloy_primitives::Address;
pub use envelope::{Envelope, Message, MessageKind, now_ms};
pub use identity::Identity;
pub use verify::{Freshness, SenderPolicy, Verifier, VerifyError};
