//! The swarm: transports (TCP and QUIC, noise and yamux on TCP), and the behaviours — the
//! roster gate first, connection limits, then identify, ping, request-response, gossipsub and
//! raw streams.

use std::time::Duration;

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, SwarmBuilder, identify, identity::Keypair, noise, ping};
use libp2p::{tcp, yamux};

use crate::codec::ByteCodec;
use crate::config::Config;
use crate::error::Error;
use crate::gate::Gate;
use crate::metrics::Metrics;

/// Everything the swarm runs. The gate comes first: a connection it refuses is never offered
/// to the others.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) gate: Gate,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) request: request_response::Behaviour<ByteCodec>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) stream: libp2p_stream::Behaviour,
}

/// The libp2p protocol of the application's streams named `name`: `{prefix}stream/{name}`.
pub(crate) fn stream_protocol(prefix: &str, name: &str) -> Result<StreamProtocol, Error> {
    StreamProtocol::try_from_owned(format!("{prefix}stream/{name}"))
        .map_err(|_| Error::Config(format!("protocol prefix {prefix:?} must start with '/'")))
}

/// The libp2p protocol that carries every application request: `{prefix}req/1`.
pub(crate) fn request_protocol(prefix: &str) -> Result<StreamProtocol, Error> {
    StreamProtocol::try_from_owned(format!("{prefix}req/1"))
        .map_err(|_| Error::Config(format!("protocol prefix {prefix:?} must start with '/'")))
}

/// Gossipsub tuned for an r1 network of 3 to 10 nodes, every node connected to every other.
///
/// The library defaults (mesh of 6, between 5 and 12, gossip to 6 more peers) assume hundreds
/// of peers: with 2 to 9 others a node could never fill a mesh of 5, so every heartbeat would
/// try to graft peers that do not exist and the mesh would stay "under-filled" for good. Here
/// the mesh aims at 3 peers (at least 2, at most 6, one of them dialed by us so an attacker who
/// dials us cannot own the whole mesh) and gossip goes to 3 peers outside it. Publishing floods
/// to every subscribed peer (the default), so a node's own messages reach a small network in
/// one hop whatever the mesh looks like; the mesh carries what others forward.
///
/// Messages must be signed by their author's key ([`MessageAuthenticity::Signed`],
/// [`ValidationMode::Strict`]) and are held until the event loop checks the author is on the
/// roster. `max_transmit_size` is the configured gossip limit ([`Limits::max_gossip_bytes`],
/// 64 KiB by default): gossip carries small announcements (a CSTORE write, an R1FS "I have
/// this CID"), bulk data goes by request, so no peer can make every node buffer and forward
/// large messages.
///
/// [`Limits::max_gossip_bytes`]: crate::config::Limits::max_gossip_bytes
pub(crate) fn gossipsub_config(config: &Config) -> Result<gossipsub::Config, Error> {
    gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(format!("{}meshsub", config.protocol_prefix))
        .mesh_n(3)
        .mesh_n_low(2)
        .mesh_n_high(6)
        .mesh_outbound_min(1)
        .gossip_lazy(3)
        .heartbeat_interval(Duration::from_secs(1))
        .max_transmit_size(config.limits.max_gossip_bytes)
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .build()
        .map_err(|e| Error::Config(format!("gossipsub: {e}")))
}

fn behaviour(keypair: &Keypair, config: &Config, metrics: &Metrics) -> Result<Behaviour, Error> {
    let local = config.identity.address();
    let prefix = &config.protocol_prefix;
    let identify = identify::Behaviour::new(
        identify::Config::new(format!("{prefix}id/1"), keypair.public())
            .with_agent_version(format!("r1-node/{}", env!("CARGO_PKG_VERSION"))),
    );
    let codec = ByteCodec {
        max_request_bytes: config.limits.max_request_bytes,
        max_response_bytes: config.limits.max_response_bytes,
    };
    let request = request_response::Behaviour::with_codec(
        codec,
        [(request_protocol(prefix)?, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.limits.request_timeout)
            .with_max_concurrent_streams(config.limits.max_concurrent_streams),
    );
    let gossipsub = gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(keypair.clone()),
        gossipsub_config(config)?,
    )
    .map_err(|e| Error::Config(format!("gossipsub: {e}")))?;
    // Handshakes in progress are bounded, so strangers cannot make the node run noise
    // handshakes without end before the gate can name and refuse them.
    let limits = connection_limits::Behaviour::new(
        ConnectionLimits::default()
            .with_max_pending_incoming(Some(config.limits.max_pending_incoming))
            .with_max_established_per_peer(Some(config.limits.max_connections_per_peer)),
    );
    Ok(Behaviour {
        gate: Gate::new(local, metrics.clone()),
        limits,
        identify,
        ping: ping::Behaviour::new(ping::Config::new()),
        request,
        gossipsub,
        stream: libp2p_stream::Behaviour::new(),
    })
}

/// Builds the swarm for `config` with `keypair` (the node key as libp2p sees it).
pub(crate) fn build(
    keypair: Keypair,
    config: &Config,
    metrics: &Metrics,
) -> Result<Swarm<Behaviour>, Error> {
    let behaviour = behaviour(&keypair, config, metrics)?;
    let idle = config.limits.idle_connection_timeout;
    let builder = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| Error::Config(format!("noise: {e}")))?;
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let swarm = builder
        .with_behaviour(|_| behaviour)
        .map_err(|e| Error::Config(format!("behaviour: {e:?}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    Ok(swarm)
}
