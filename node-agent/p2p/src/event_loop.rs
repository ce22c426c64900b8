//! The task that owns the swarm: it runs [`Command`]s from the clients, turns swarm events
//! into [`Event`]s for the application, keeps roster peers dialed with backoff, and answers
//! inbound requests once the application replies.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alloy_primitives::Address;
use libp2p::connection_limits::Exceeded;
use libp2p::futures::future::BoxFuture;
use libp2p::futures::stream::FuturesUnordered;
use libp2p::futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionDenied, ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Command, Event, Reply};
use crate::codec::{FrameTooLarge, MAX_PROTOCOL_LEN, WireRequest, WireResponse};
use crate::config::{Config, Limits};
use crate::error::Error;
use crate::gate::GateEvent;
use crate::identity::address_of;
use crate::metrics::{Metrics, ReasonLabel};
use crate::roster::{Changed, ParsedRoster, RosterBook};
use crate::swarm::{Behaviour, BehaviourEvent};

/// How often due redials and request deadlines are looked at.
const TICK: Duration = Duration::from_millis(50);

/// A connection that lived less than this before closing counts as a failed dial, so a peer
/// that accepts and then drops us is redialed with growing backoff, not in a tight loop.
const SHORT_LIVED: Duration = Duration::from_secs(10);

/// Whether `name` may be an application protocol or topic name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_PROTOCOL_LEN && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Dialing state of one roster peer that is not connected (or was dialed).
#[derive(Debug)]
struct DialState {
    /// When the next dial may start.
    next_at: Instant,
    /// Failed dials (or short-lived connections) in a row.
    failures: u32,
    /// The dial in flight, if any.
    in_flight: Option<ConnectionId>,
    /// Which of the peer's multiaddrs the next dial without a known peer id uses.
    next_addr: usize,
    /// When the current connection opened.
    connected_at: Option<Instant>,
}

/// An outbound request waiting for its answer.
struct Outbound {
    peer: Address,
    protocol: String,
    reply: Reply<Result<Vec<u8>, Error>>,
}

/// What waits for a peer whose peer id is not known yet: a request, or a caller that wants the
/// peer id (to open a stream).
enum Pending {
    Request {
        protocol: String,
        bytes: Vec<u8>,
        reply: Reply<Result<Vec<u8>, Error>>,
    },
    PeerId(Reply<Result<PeerId, Error>>),
}

/// Something waiting for a connection to a peer, until its deadline.
struct Waiting {
    deadline: Instant,
    pending: Pending,
}

impl Waiting {
    /// Tells the waiter it failed with `error`.
    fn fail(self, error: Error) {
        match self.pending {
            Pending::Request { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Pending::PeerId(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// The application's answer to an inbound request (`None`: dropped or too late).
struct Answer {
    channel: ResponseChannel<WireResponse>,
    from: Address,
    protocol: String,
    bytes: Option<Vec<u8>>,
}

/// The event loop. See the module documentation.
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    metrics: Metrics,
    local: Address,
    prefix: String,
    served: HashSet<String>,
    limits: Limits,
    book: RosterBook,
    dials: HashMap<Address, DialState>,
    /// Peer ids learned from connections: an address names a key hash, not the key, so the
    /// peer id of a roster node is known only once it connected.
    known: HashMap<Address, PeerId>,
    outbound: HashMap<OutboundRequestId, Outbound>,
    waiting: HashMap<Address, Vec<Waiting>>,
    answers: FuturesUnordered<BoxFuture<'static, Answer>>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        config: &Config,
        metrics: Metrics,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            metrics,
            local: config.identity.address(),
            prefix: config.protocol_prefix.clone(),
            served: config.request_protocols.iter().cloned().collect(),
            limits: config.limits.clone(),
            book: RosterBook::new(config.limits.roster_freshness),
            dials: HashMap::new(),
            known: HashMap::new(),
            outbound: HashMap::new(),
            waiting: HashMap::new(),
            answers: FuturesUnordered::new(),
        }
    }

    /// Runs until every [`Client`](crate::Client) is dropped.
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(answer) = self.answers.next(), if !self.answers.is_empty() => {
                    self.on_answer(answer);
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("peer-to-peer event loop stopped: every client was dropped");
    }

    fn emit(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.metrics.events_dropped.inc();
            tracing::warn!("application event buffer full or closed: event dropped");
        }
    }

    fn topic(&self, name: &str) -> IdentTopic {
        IdentTopic::new(format!("{}{name}", self.prefix))
    }

    // ---- commands ----

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SetRoster { roster, reply } => {
                let changed = self.apply_roster(roster);
                let _ = reply.send(changed);
            }
            Command::OfferRoster {
                bytes,
                now_ms,
                oracles,
                reply,
            } => {
                let _ = reply.send(self.offer_roster(&bytes, now_ms, &oracles));
            }
            Command::Request {
                peer,
                protocol,
                bytes,
                reply,
            } => self.request(peer, protocol, bytes, reply),
            Command::PeerId { peer, reply } => {
                if let Some((peer_id, Pending::PeerId(reply))) =
                    self.peer_id_or_wait(peer, Pending::PeerId(reply))
                {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let _ = reply.send(self.publish(topic, bytes));
            }
            Command::Subscribe { topic, reply } => {
                let result = if valid_name(&topic) {
                    let target = self.topic(&topic);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .subscribe(&target)
                        .map_err(|e| Error::Subscribe {
                            topic,
                            reason: format!("{e:?}"),
                        })
                } else {
                    Err(Error::BadName(topic))
                };
                let _ = reply.send(result);
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.behaviour().gate.connected_addresses());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    fn offer_roster(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        oracles: &HashSet<Address>,
    ) -> Result<Changed, Error> {
        match self.book.offer(bytes, now_ms, oracles) {
            Ok(changed) => {
                self.metrics.rosters_accepted.inc();
                self.metrics
                    .roster_addrs_dropped
                    .inc_by(changed.dropped_addrs as u64);
                let dropped = changed.dropped_addrs;
                let roster = self.book.current().cloned().unwrap_or_default();
                let mut applied = self.apply_roster(roster);
                applied.dropped_addrs = dropped;
                Ok(applied)
            }
            Err(refusal) => {
                self.metrics
                    .rosters_refused
                    .get_or_create(&ReasonLabel {
                        reason: refusal.label(),
                    })
                    .inc();
                tracing::debug!(reason = refusal.label(), %refusal, "roster refused");
                Err(refusal.into())
            }
        }
    }

    fn apply_roster(&mut self, roster: ParsedRoster) -> Changed {
        let previous = self
            .swarm
            .behaviour()
            .gate
            .roster()
            .cloned()
            .unwrap_or_default();
        let changed = previous.diff(&roster);
        tracing::info!(
            issued_ms = roster.issued_ms(),
            nodes = roster.len(),
            added = changed.added.len(),
            removed = changed.removed.len(),
            "roster applied"
        );
        self.swarm.behaviour_mut().gate.set_roster(roster);
        for address in &changed.removed {
            self.dials.remove(address);
            self.known.remove(address);
            for waiting in self.waiting.remove(address).unwrap_or_default() {
                waiting.fail(Error::NotOnRoster(*address));
            }
        }
        let now = Instant::now();
        for address in &changed.readdressed {
            if let Some(state) = self.dials.get_mut(address) {
                state.next_at = now;
                state.failures = 0;
                state.next_addr = 0;
            }
        }
        self.dial_due(now);
        changed
    }

    fn request(
        &mut self,
        peer: Address,
        protocol: String,
        bytes: Vec<u8>,
        reply: Reply<Result<Vec<u8>, Error>>,
    ) {
        if !valid_name(&protocol) {
            let _ = reply.send(Err(Error::BadName(protocol)));
            return;
        }
        if bytes.len() > self.limits.max_request_bytes {
            let _ = reply.send(Err(Error::RequestTooLarge {
                size: bytes.len(),
                limit: self.limits.max_request_bytes,
            }));
            return;
        }
        let pending = Pending::Request {
            protocol,
            bytes,
            reply,
        };
        match self.peer_id_or_wait(peer, pending) {
            Some((
                peer_id,
                Pending::Request {
                    protocol,
                    bytes,
                    reply,
                },
            )) => self.send_request(peer_id, peer, protocol, bytes, reply),
            Some((_, Pending::PeerId(_))) | None => {}
        }
    }

    /// The peer id of roster peer `peer`, with `pending` back, when it is known; else `pending`
    /// waits for a connection to it (dialed now) or fails at once when `peer` is not on the
    /// roster.
    fn peer_id_or_wait(&mut self, peer: Address, pending: Pending) -> Option<(PeerId, Pending)> {
        let on_roster = self
            .swarm
            .behaviour()
            .gate
            .roster()
            .is_some_and(|r| r.contains(&peer));
        let now = Instant::now();
        let waiting = Waiting {
            deadline: now + self.limits.request_timeout,
            pending,
        };
        if peer == self.local || !on_roster {
            waiting.fail(Error::NotOnRoster(peer));
            return None;
        }
        let gate = &self.swarm.behaviour().gate;
        if let Some(peer_id) = gate
            .connected_peer(&peer)
            .or(self.known.get(&peer).copied())
        {
            return Some((peer_id, waiting.pending));
        }
        // The peer id is learned from the connection: dial now, answer once connected.
        self.waiting.entry(peer).or_default().push(waiting);
        let state = self.dials.entry(peer).or_insert_with(|| DialState {
            next_at: now,
            failures: 0,
            in_flight: None,
            next_addr: 0,
            connected_at: None,
        });
        if state.in_flight.is_none() {
            state.next_at = now;
        }
        self.dial_due(now);
        None
    }

    fn send_request(
        &mut self,
        peer_id: PeerId,
        peer: Address,
        protocol: String,
        bytes: Vec<u8>,
        reply: Reply<Result<Vec<u8>, Error>>,
    ) {
        self.metrics.traffic(&protocol, "out", bytes.len());
        let request = WireRequest {
            protocol: protocol.clone(),
            bytes,
        };
        let id = self
            .swarm
            .behaviour_mut()
            .request
            .send_request(&peer_id, request);
        self.outbound.insert(
            id,
            Outbound {
                peer,
                protocol,
                reply,
            },
        );
    }

    fn publish(&mut self, topic: String, bytes: Vec<u8>) -> Result<(), Error> {
        if !valid_name(&topic) {
            return Err(Error::BadName(topic));
        }
        if bytes.len() > self.limits.max_gossip_bytes {
            return Err(Error::Publish {
                topic,
                reason: format!(
                    "{} bytes is over the {}-byte limit",
                    bytes.len(),
                    self.limits.max_gossip_bytes
                ),
            });
        }
        let size = bytes.len();
        let target = self.topic(&topic);
        match self.swarm.behaviour_mut().gossipsub.publish(target, bytes) {
            Ok(_) => {
                self.metrics
                    .traffic(&format!("gossip/{topic}"), "out", size);
                Ok(())
            }
            Err(error) => {
                let reason = match error {
                    PublishError::NoPeersSubscribedToTopic => "no peer subscribed".to_owned(),
                    PublishError::MessageTooLarge => "too large".to_owned(),
                    PublishError::Duplicate => "already published".to_owned(),
                    other => other.to_string(),
                };
                Err(Error::Publish { topic, reason })
            }
        }
    }

    // ---- answers to inbound requests ----

    fn on_answer(&mut self, answer: Answer) {
        let response = match answer.bytes {
            Some(bytes) if bytes.len() > self.limits.max_response_bytes => {
                tracing::warn!(
                    protocol = answer.protocol,
                    size = bytes.len(),
                    limit = self.limits.max_response_bytes,
                    "answer over the response limit: not sent"
                );
                WireResponse::TooLarge(bytes.len() as u64)
            }
            Some(bytes) => {
                self.metrics.traffic(&answer.protocol, "out", bytes.len());
                WireResponse::Ok(bytes)
            }
            None => WireResponse::NoAnswer,
        };
        let sent = self
            .swarm
            .behaviour_mut()
            .request
            .send_response(answer.channel, response);
        if sent.is_err() {
            tracing::debug!(from = %answer.from, "requester gone before the answer");
        }
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gate(event)) => self.on_gate(event),
            SwarmEvent::Behaviour(BehaviourEvent::Request(event)) => self.on_request_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(
                BehaviourEvent::Identify(_) | BehaviourEvent::Ping(_) | BehaviourEvent::Stream(()),
            ) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                // An address dial that reached another roster node than the one dialed
                // counts as a failure for the one dialed.
                let reached = address_of(&peer_id);
                let dialed = self
                    .dials
                    .iter()
                    .find(|(_, s)| s.in_flight == Some(connection_id))
                    .map(|(a, _)| *a);
                if let Some(dialed) = dialed
                    && reached != Some(dialed)
                {
                    tracing::warn!(%dialed, ?reached, "dialed one roster node, reached another");
                    self.dial_failed(dialed);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                let dialed = self
                    .dials
                    .iter()
                    .find(|(_, s)| s.in_flight == Some(connection_id))
                    .map(|(a, _)| *a);
                if let DialError::Denied { cause } = &error {
                    self.count_limit(cause);
                }
                if let Some(address) = dialed {
                    tracing::debug!(%address, %error, "dial failed");
                    self.dial_failed(address);
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if let ListenError::Denied { cause } = &error {
                    self.count_limit(cause);
                }
                tracing::debug!(%error, "inbound connection failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            _ => {}
        }
    }

    /// Counts a connection the connection limits refused (the gate counts its own).
    fn count_limit(&self, cause: &ConnectionDenied) {
        if cause.downcast_ref::<Exceeded>().is_some() {
            self.metrics.refused("connection_limit");
        }
    }

    fn on_gate(&mut self, event: GateEvent) {
        let now = Instant::now();
        match event {
            GateEvent::PeerConnected { peer, address } => {
                tracing::info!(%address, %peer, "peer connected");
                self.known.insert(address, peer);
                if let Some(state) = self.dials.get_mut(&address) {
                    state.in_flight = None;
                    state.connected_at = Some(now);
                }
                for waiting in self.waiting.remove(&address).unwrap_or_default() {
                    match waiting.pending {
                        Pending::Request {
                            protocol,
                            bytes,
                            reply,
                        } => self.send_request(peer, address, protocol, bytes, reply),
                        Pending::PeerId(reply) => {
                            let _ = reply.send(Ok(peer));
                        }
                    }
                }
                self.emit(Event::PeerConnected(address));
            }
            GateEvent::PeerDisconnected { address, .. } => {
                tracing::info!(%address, "peer disconnected");
                let on_roster = self
                    .swarm
                    .behaviour()
                    .gate
                    .roster()
                    .is_some_and(|r| r.contains(&address));
                if on_roster {
                    let grace = self.grace(&address);
                    let limits = &self.limits;
                    let state = self.dials.entry(address).or_insert_with(|| DialState {
                        next_at: now,
                        failures: 0,
                        in_flight: None,
                        next_addr: 0,
                        connected_at: None,
                    });
                    let short = state
                        .connected_at
                        .take()
                        .is_none_or(|at| now.duration_since(at) < SHORT_LIVED);
                    state.failures = if short { state.failures + 1 } else { 0 };
                    state.next_at = now + backoff(limits, state.failures) + grace;
                }
                self.emit(Event::PeerDisconnected(address));
            }
        }
    }

    fn on_request_event(&mut self, event: request_response::Event<WireRequest, WireResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_inbound_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some(outbound) = self.outbound.remove(&request_id) else {
                        return;
                    };
                    let peer = outbound.peer;
                    let result = match response {
                        WireResponse::Ok(bytes) => {
                            self.metrics.traffic(&outbound.protocol, "in", bytes.len());
                            Ok(bytes)
                        }
                        WireResponse::TooLarge(size) => {
                            Err(Error::RemoteResponseTooLarge { peer, size })
                        }
                        WireResponse::UnknownProtocol => Err(Error::UnknownProtocol {
                            peer,
                            protocol: outbound.protocol,
                        }),
                        WireResponse::NoAnswer => Err(Error::NoAnswer(peer)),
                    };
                    let _ = outbound.reply.send(result);
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                let Some(outbound) = self.outbound.remove(&request_id) else {
                    return;
                };
                let peer = outbound.peer;
                let error = match error {
                    OutboundFailure::Timeout => Error::Timeout(peer),
                    OutboundFailure::DialFailure => Error::Unreachable(peer),
                    OutboundFailure::ConnectionClosed => Error::ConnectionClosed(peer),
                    OutboundFailure::Io(io) => match FrameTooLarge::within(&io) {
                        Some(too_large) => Error::ResponseTooLarge {
                            peer,
                            size: too_large.size,
                            limit: too_large.limit,
                        },
                        None => Error::Request {
                            peer,
                            reason: io.to_string(),
                        },
                    },
                    other => Error::Request {
                        peer,
                        reason: other.to_string(),
                    },
                };
                tracing::debug!(%error, "request failed");
                let _ = outbound.reply.send(Err(error));
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_inbound_request(
        &mut self,
        peer: PeerId,
        request: WireRequest,
        channel: ResponseChannel<WireResponse>,
    ) {
        let gate = &self.swarm.behaviour().gate;
        let Some(from) = gate
            .address_of_connected(&peer)
            .or_else(|| address_of(&peer))
        else {
            return;
        };
        if !self.served.contains(&request.protocol) {
            self.metrics
                .requests_refused
                .get_or_create(&ReasonLabel {
                    reason: "unknown_protocol",
                })
                .inc();
            let _ = self
                .swarm
                .behaviour_mut()
                .request
                .send_response(channel, WireResponse::UnknownProtocol);
            return;
        }
        self.metrics
            .traffic(&request.protocol, "in", request.bytes.len());
        let (reply, answer) = oneshot::channel();
        let protocol = request.protocol.clone();
        let event = Event::Request {
            from,
            protocol: request.protocol,
            bytes: request.bytes,
            reply,
        };
        if self.events.try_send(event).is_err() {
            self.metrics.events_dropped.inc();
            self.metrics
                .requests_refused
                .get_or_create(&ReasonLabel {
                    reason: "event_buffer_full",
                })
                .inc();
            let _ = self
                .swarm
                .behaviour_mut()
                .request
                .send_response(channel, WireResponse::NoAnswer);
            return;
        }
        let wait = self.limits.request_timeout;
        self.answers.push(
            async move {
                let bytes = tokio::time::timeout(wait, answer)
                    .await
                    .ok()
                    .and_then(Result::ok);
                Answer {
                    channel,
                    from,
                    protocol,
                    bytes,
                }
            }
            .boxed(),
        );
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let roster = self.swarm.behaviour().gate.roster();
                let verdict = match message.source.as_ref().map(address_of) {
                    None => Err("unsigned"),
                    Some(None) => Err("not_secp256k1"),
                    Some(Some(author)) if roster.is_some_and(|r| r.contains(&author)) => Ok(author),
                    Some(Some(_)) => Err("not_on_roster"),
                };
                let topic = message
                    .topic
                    .as_str()
                    .strip_prefix(&self.prefix)
                    .map(str::to_owned);
                let acceptance = match (verdict, topic) {
                    (Ok(from), Some(topic)) => {
                        self.metrics
                            .traffic(&format!("gossip/{topic}"), "in", message.data.len());
                        self.emit(Event::Gossip {
                            from,
                            topic,
                            bytes: message.data,
                        });
                        MessageAcceptance::Accept
                    }
                    (verdict, _) => {
                        let reason = verdict.err().unwrap_or("foreign_topic");
                        self.metrics
                            .gossip_refused
                            .get_or_create(&ReasonLabel { reason })
                            .inc();
                        MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let topic = topic.as_str().strip_prefix(&self.prefix).map(str::to_owned);
                if let (Some(from), Some(topic)) = (address_of(&peer_id), topic) {
                    self.emit(Event::Subscribed { from, topic });
                }
            }
            _ => {}
        }
    }

    // ---- dialing ----

    /// Extra wait before this node dials `address`: the node with the smaller address dials
    /// first, so two nodes usually share one connection.
    fn grace(&self, address: &Address) -> Duration {
        if self.local < *address {
            Duration::ZERO
        } else {
            self.limits.dial_grace
        }
    }

    fn dial_failed(&mut self, address: Address) {
        let now = Instant::now();
        let Some(state) = self.dials.get_mut(&address) else {
            return;
        };
        state.in_flight = None;
        state.failures += 1;
        state.next_addr += 1;
        let addrs = self
            .swarm
            .behaviour()
            .gate
            .roster()
            .map_or(0, |r| r.addrs(&address).len());
        let round_over =
            addrs == 0 || state.next_addr % addrs == 0 || self.known.contains_key(&address);
        if round_over {
            state.next_at = now + backoff(&self.limits, state.failures);
            for waiting in self.waiting.remove(&address).unwrap_or_default() {
                waiting.fail(Error::Unreachable(address));
            }
        } else {
            // Try the peer's next multiaddr at once.
            state.next_at = now;
            self.dial_due(now);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for (address, list) in &mut self.waiting {
            let (expired, kept): (Vec<_>, Vec<_>) = list.drain(..).partition(|w| w.deadline <= now);
            *list = kept;
            for waiting in expired {
                waiting.fail(Error::Timeout(*address));
            }
        }
        self.waiting.retain(|_, list| !list.is_empty());
        self.dial_due(now);
    }

    /// Dials every roster peer that is not connected, not being dialed and due.
    fn dial_due(&mut self, now: Instant) {
        let Some(roster) = self.swarm.behaviour().gate.roster() else {
            return;
        };
        let gate = &self.swarm.behaviour().gate;
        let mut due = Vec::new();
        for (address, addrs) in roster.peers() {
            if *address == self.local || addrs.is_empty() || gate.connected_peer(address).is_some()
            {
                continue;
            }
            let grace = self.grace(address);
            let state = self.dials.entry(*address).or_insert_with(|| DialState {
                next_at: now + grace,
                failures: 0,
                in_flight: None,
                next_addr: 0,
                connected_at: None,
            });
            if state.in_flight.is_none() && state.next_at <= now {
                let opts = match self.known.get(address) {
                    Some(peer) => DialOpts::peer_id(*peer)
                        .addresses(addrs.to_vec())
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                    None => DialOpts::unknown_peer_id()
                        .address(addrs[state.next_addr % addrs.len()].clone())
                        .build(),
                };
                due.push((*address, opts));
            }
        }
        for (address, opts) in due {
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(%address, "dialing roster peer");
                    if let Some(state) = self.dials.get_mut(&address) {
                        state.in_flight = Some(id);
                    }
                }
                Err(DialError::DialPeerConditionFalse(_)) => {
                    // Already connected or being dialed (e.g. by a request): look again later.
                    if let Some(state) = self.dials.get_mut(&address) {
                        state.next_at = now + self.limits.dial_backoff_initial;
                    }
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "cannot dial roster peer");
                    if let Some(state) = self.dials.get_mut(&address) {
                        state.failures += 1;
                        state.next_addr += 1;
                        state.next_at = now + backoff(&self.limits, state.failures);
                    }
                }
            }
        }
    }
}

/// Wait before the next dial after `failures` failures in a row: the initial backoff doubled
/// per failure, capped.
fn backoff(limits: &Limits, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    limits
        .dial_backoff_initial
        .saturating_mul(factor)
        .min(limits.dial_backoff_max)
}
