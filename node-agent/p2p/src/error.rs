//! What can go wrong when starting the layer or asking it for something.

use alloy_primitives::Address;

use crate::identity::KeyError;
use crate::roster::Refusal;

/// An error of the peer-to-peer layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("bad peer-to-peer configuration: {0}")]
    Config(String),
    /// The node key cannot become a libp2p key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A listen address could not be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The event loop has stopped (every client was dropped, or it failed).
    #[error("the peer-to-peer layer has stopped")]
    Stopped,
    /// The peer is not on the roster (or is this node).
    #[error("{0} is not on the roster")]
    NotOnRoster(Address),
    /// No connection to the peer could be opened.
    #[error("cannot reach {0}")]
    Unreachable(Address),
    /// No answer within the request timeout.
    #[error("request to {0} timed out")]
    Timeout(Address),
    /// The connection closed before the answer came.
    #[error("connection to {0} closed before it answered")]
    ConnectionClosed(Address),
    /// The request payload is over the limit; nothing was sent.
    #[error("request of {size} bytes is over the {limit}-byte limit")]
    RequestTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The answer announced a size over this node's response limit and was not read.
    #[error("response from {peer} of {size} bytes is over the {limit}-byte limit")]
    ResponseTooLarge {
        /// The responder.
        peer: Address,
        /// Announced size.
        size: u64,
        /// This node's limit.
        limit: u64,
    },
    /// The responder's answer was over its own limit, so it sent none.
    #[error("{peer} refused to send a response of {size} bytes (over its limit)")]
    RemoteResponseTooLarge {
        /// The responder.
        peer: Address,
        /// The size of the answer it did not send.
        size: u64,
    },
    /// The application protocol name is empty, too long or not printable ASCII.
    #[error("bad protocol or topic name {0:?}")]
    BadName(String),
    /// The responder does not serve the application protocol.
    #[error("{peer} does not serve protocol {protocol:?}")]
    UnknownProtocol {
        /// The responder.
        peer: Address,
        /// The protocol asked for.
        protocol: String,
    },
    /// A stream to the peer could not be opened.
    #[error("cannot open a {protocol:?} stream to {peer}: {reason}")]
    Stream {
        /// The peer.
        peer: Address,
        /// The stream protocol.
        protocol: String,
        /// Why.
        reason: String,
    },
    /// This node already accepts the stream protocol elsewhere.
    #[error("stream protocol {0:?} is accepted already")]
    AlreadyAccepting(String),
    /// The responder's application dropped the request without answering.
    #[error("{0} did not answer")]
    NoAnswer(Address),
    /// The request failed on the wire.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The responder.
        peer: Address,
        /// What happened.
        reason: String,
    },
    /// A gossip message could not be published.
    #[error("cannot publish on {topic:?}: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// Why (`no peer subscribed`, `too large`, …).
        reason: String,
    },
    /// A topic could not be subscribed to.
    #[error("cannot subscribe to {topic:?}: {reason}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A roster was refused.
    #[error(transparent)]
    Roster(#[from] Refusal),
}
