//! Harness for r1's end-to-end scenarios: each scenario starts its own real parts on 127.0.0.1
//! (a development chain, a private containerd, MQTT brokers, r1 binaries) and this crate makes
//! sure nothing outlives the test.

pub mod bore;
pub mod broker;
pub mod chain;
pub mod consensus;
pub mod containerd;
pub mod devnet;
pub mod hostile;
pub mod images;
pub mod job_story;
pub mod kube_api;
pub mod mqtt_client;
pub mod network;
pub mod node;
pub mod noise;
pub mod oracle;
pub mod peer;
pub mod peer_rig;
pub mod phrases;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod proxy;
pub mod registry;
pub mod rogue_peer;
pub mod scenario;
pub mod signal;
pub mod simnodes;
pub mod tls;
pub mod wait;

pub use broker::{Broker, Mosquitto, Rumqttd};
pub use chain::TestChain;
pub use containerd::PrivateContainerd;
pub use images::{ImageInfo, OciImageBuilder};
pub use network::{BrokerKind, Network, NetworkSettings};
pub use oracle::{OracleProcess, OracleSettings};
pub use ports::free_port;
pub use process::{ChildGuard, bin_path};
