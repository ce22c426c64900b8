//! The oracle's side of CSPs' sessions (see [`crate::intake::sessions`]): it orders a node to
//! open a session ([`SessionOpen`], signed, on the node's command topic), takes the node's
//! output from the sessions lane and hands it, in order, to the API request that asked. Output
//! is taken only from the node the session was opened on, signed by it, fresh and numbered
//! without gaps; input only from the CSP who opened it, numbered here. At most
//! [`MAX_OPEN_SESSIONS`] are open through one oracle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alloy_primitives::Address;
use futures_util::future::BoxFuture;
use r1_protocol::envelope::MessageKind;
use r1_protocol::now_ms;
use r1_protocol::sessions::{SessionEnd, SessionId, SessionInput, SessionOpen, SessionOutput};
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::verify::{Freshness, Verifier};
use tokio::sync::mpsc;

use crate::intake::sessions::{InputBody, OUTPUT_QUEUE, ReplicaAt, SessionDoor, SessionRefused};
use crate::oracle::mesh::Inbound;
use crate::oracle::runtime::Oracle;

/// Sessions open through one oracle at once.
pub const MAX_OPEN_SESSIONS: usize = 256;

/// A session this oracle opened.
struct Open {
    node: Address,
    requester: Address,
    output: mpsc::Sender<SessionOutput>,
    next_output: u64,
    next_input: u64,
}

type OutputVerifier = Verifier<fn(MessageKind, &Address) -> bool>;

fn session_output(kind: MessageKind, _: &Address) -> bool {
    kind == MessageKind::SessionOutput
}

/// The sessions open through this oracle.
pub struct SessionHub {
    oracle: Arc<Oracle>,
    topics: Topics,
    open: Mutex<HashMap<SessionId, Open>>,
    verifier: Mutex<OutputVerifier>,
}

impl std::fmt::Debug for SessionHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHub").finish_non_exhaustive()
    }
}

impl SessionHub {
    /// The hub of `oracle`, whose topics are under `topics`.
    pub fn new(oracle: Arc<Oracle>, topics: Topics) -> Self {
        Self {
            oracle,
            topics,
            open: Mutex::new(HashMap::new()),
            verifier: Mutex::new(Verifier::new(session_output, Freshness::default())),
        }
    }

    fn open_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the output in `inbound` (the sessions lane) to the sessions it belongs to.
    pub async fn receive(self: Arc<Self>, mut inbound: mpsc::Receiver<Inbound>) {
        while let Some(message) = inbound.recv().await {
            self.take(&message);
        }
    }

    fn take(&self, message: &Inbound) {
        let Some((Channel::Sessions, node)) = self.topics.parse(&message.topic) else {
            return;
        };
        if self.topics.session_recipient(&message.topic) != Some(self.oracle.me) {
            return;
        }
        let verified = self
            .verifier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .verify::<SessionOutput>(&message.payload, now_ms());
        let output = match verified {
            Ok(verified) if verified.sender == node => verified.message,
            Ok(verified) => {
                tracing::warn!(%node, sender = %verified.sender, "session output signed by another node");
                return;
            }
            Err(e) => {
                tracing::debug!(%node, "session output refused: {e}");
                return;
            }
        };
        let mut open = self.open_sessions();
        let Some(session) = open.get_mut(&output.session) else {
            return;
        };
        if session.node != node {
            tracing::warn!(%node, session = %output.session, "output for a session on another node");
            return;
        }
        if output.seq < session.next_output {
            return;
        }
        let id = output.session.clone();
        let forwarded = if output.seq > session.next_output {
            let gap = SessionOutput {
                session: id.clone(),
                seq: session.next_output,
                stream: output.stream,
                data: String::new(),
                end: Some(SessionEnd::Failed {
                    reason: format!(
                        "output {} to {} was lost on the way",
                        session.next_output,
                        output.seq - 1
                    ),
                }),
            };
            let _ = session.output.try_send(gap);
            false
        } else {
            session.next_output += 1;
            let last = output.end.is_some();
            session.output.try_send(output).is_ok() && !last
        };
        if !forwarded {
            let gone = open.remove(&id);
            drop(open);
            if let Some(gone) = gone {
                self.close_on_node(&id, &gone);
            }
        }
    }

    /// Tells the node to end a session nobody reads any more (it may have ended already).
    fn close_on_node(&self, session: &SessionId, open: &Open) {
        let input = SessionInput {
            target: open.node,
            session: session.clone(),
            seq: open.next_input,
            data: String::new(),
            eof: false,
            resize: None,
            close: true,
        };
        self.oracle.send(open.node, &input);
    }
}

impl SessionDoor for SessionHub {
    fn replicas(&self, job: u64) -> BoxFuture<'_, Vec<ReplicaAt>> {
        Box::pin(async move {
            let registry = self.oracle.registry.lock().await;
            let running = registry
                .reports_of(job)
                .into_iter()
                .map(|(node, report)| ReplicaAt {
                    index: report.id.index(),
                    node,
                    workload: report.id,
                    state: Some(report.state.clone()),
                });
            let retired = registry
                .retired_logs_of(job)
                .into_iter()
                .map(|(node, workload)| ReplicaAt {
                    index: workload.index(),
                    node,
                    workload,
                    state: None,
                });
            running.chain(retired).collect()
        })
    }

    fn open(
        &self,
        replica: &ReplicaAt,
        requester: Address,
        request: r1_protocol::sessions::SessionRequest,
    ) -> Result<(SessionId, mpsc::Receiver<SessionOutput>), SessionRefused> {
        if let Some(problem) = request.problem() {
            return Err(SessionRefused::Invalid(problem));
        }
        let session = SessionId::random();
        let (output, receiver) = mpsc::channel(OUTPUT_QUEUE);
        {
            let mut open = self.open_sessions();
            if open.len() >= MAX_OPEN_SESSIONS {
                return Err(SessionRefused::Full(MAX_OPEN_SESSIONS));
            }
            open.insert(
                session.clone(),
                Open {
                    node: replica.node,
                    requester,
                    output,
                    next_output: 0,
                    next_input: 0,
                },
            );
        }
        let order = SessionOpen {
            target: replica.node,
            session: session.clone(),
            workload: replica.workload,
            requester,
            request,
        };
        if !self.oracle.send(replica.node, &order) {
            self.open_sessions().remove(&session);
            return Err(SessionRefused::Unreachable);
        }
        tracing::info!(%session, node = %replica.node, %requester, job = replica.workload.job, replica = replica.index, "session opened");
        Ok((session, receiver))
    }

    fn input(
        &self,
        session: &SessionId,
        requester: Address,
        input: InputBody,
    ) -> Result<(), SessionRefused> {
        let (node, seq) = {
            let mut open = self.open_sessions();
            let held = open
                .get_mut(session)
                .filter(|held| held.requester == requester)
                .ok_or_else(|| SessionRefused::NoSession(session.to_string()))?;
            let seq = held.next_input;
            held.next_input += 1;
            let node = held.node;
            // Closed by its reader: forgotten here at once, whether or not the node answers.
            if input.close {
                open.remove(session);
            }
            (node, seq)
        };
        let message = SessionInput {
            target: node,
            session: session.clone(),
            seq,
            data: input.data,
            eof: input.eof,
            resize: input.resize,
            close: input.close,
        };
        if self.oracle.send(node, &message) {
            Ok(())
        } else {
            Err(SessionRefused::Unreachable)
        }
    }
}
