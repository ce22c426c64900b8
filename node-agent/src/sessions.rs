//! CSPs' sessions on this node's replicas: a replica's logs, or a command run inside it with
//! input, a terminal and its exit code (see [`r1_protocol::sessions`] for the exchange).
//!
//! [`crate::commands`] checks each order (a trusted oracle, fresh, never seen, addressed here)
//! and hands it over as a [`SessionEvent`]; [`Sessions::run`] opens each session as a task of
//! its own, logs who asked for what, and publishes the output, numbered, on the node's sessions
//! topic addressed to the oracle that opened it. Input must come from the oracle that opened the session, numbered without gaps. At
//! most [`MAX_SESSIONS`] run at once, each for at most [`MAX_SESSION_TIME`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use r1_protocol::envelope::Sealer;
use r1_protocol::messages::WorkloadId;
use r1_protocol::sessions::{
    MAX_CHUNK_BYTES, SessionEnd, SessionId, SessionInput, SessionOpen, SessionOutput,
    SessionRequest, Stream, decode_data, encode_data,
};
use r1_protocol::topics::Topics;
use r1_protocol::{Address, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::link::Link;
use crate::logs::{self, LogDir};
use crate::metrics::{CommandLabels, Metrics};
use crate::reconcile::container_id;
use crate::runtime::attach::{AttachSpec, Attached};
use crate::runtime::containerd::Containerd;
use crate::state::NodeState;

/// Sessions open at once on a node.
pub const MAX_SESSIONS: usize = 8;

/// Longest a session runs; an exec still running then is killed.
pub const MAX_SESSION_TIME: Duration = Duration::from_secs(3600);

/// How often a followed log is read for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How long output waits for the broker link before the session gives up.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(10);

/// How long a finished command's pipe must stay quiet before its output counts as complete.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// Inputs queued for one session before the oldest unread ones are refused.
const INPUT_QUEUE: usize = 64;

/// A checked order for the sessions task.
#[derive(Debug)]
pub enum SessionEvent {
    /// Open a session, as `oracle` ordered.
    Open {
        /// The order.
        open: SessionOpen,
        /// The oracle that signed it.
        oracle: Address,
    },
    /// Input for an open session, signed by `oracle`.
    Input {
        /// The input.
        input: SessionInput,
        /// The oracle that signed it.
        oracle: Address,
    },
}

/// What a session task needs from the node.
#[derive(Clone)]
pub struct SessionContext {
    /// Desired workloads.
    pub state: Arc<NodeState>,
    /// Where workload logs are.
    pub logs: LogDir,
    /// containerd, for exec.
    pub containerd: Containerd,
    /// The broker link output goes out on.
    pub link: Link,
    /// Signs output as this node.
    pub sealer: Arc<Sealer>,
    /// The network's topics.
    pub topics: Topics,
    /// This node's address.
    pub node: Address,
    /// Where exec pipes are made.
    pub dir: PathBuf,
    /// Counts sessions.
    pub metrics: Arc<Metrics>,
}

/// A session running on this node, as the dispatcher knows it.
struct Running {
    oracle: Address,
    next_input: u64,
    input: mpsc::Sender<SessionInput>,
}

/// The node's sessions.
pub struct Sessions {
    context: SessionContext,
    running: HashMap<SessionId, Running>,
}

impl Sessions {
    /// Sessions run with `context`.
    pub fn new(context: SessionContext) -> Self {
        Self {
            context,
            running: HashMap::new(),
        }
    }

    /// Opens sessions and routes their input as `events` arrive, until the sender goes.
    pub async fn run(mut self, mut events: mpsc::Receiver<SessionEvent>) {
        let (ended_tx, mut ended) = mpsc::channel::<SessionId>(MAX_SESSIONS);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(SessionEvent::Open { open, oracle }) => self.open(open, oracle, &ended_tx),
                    Some(SessionEvent::Input { input, oracle }) => self.input(input, oracle),
                    None => return,
                },
                Some(session) = ended.recv() => {
                    self.running.remove(&session);
                    self.context.metrics.sessions_open.set(self.running.len() as i64);
                }
            }
        }
    }

    fn open(&mut self, open: SessionOpen, oracle: Address, ended: &mpsc::Sender<SessionId>) {
        let SessionOpen {
            session,
            workload,
            requester,
            request,
            ..
        } = open;
        let out = Output::new(self.context.clone(), session.clone(), &oracle);
        let refuse = |reason: String| {
            tracing::warn!(%session, %requester, %oracle, job = workload.job, replica = workload.replica, "session refused: {reason}");
            let out = out.clone();
            tokio::spawn(async move { out.end(SessionEnd::Failed { reason }).await });
        };
        if self.running.contains_key(&session) {
            return refuse("a session with this id is already open".into());
        }
        if self.running.len() >= MAX_SESSIONS {
            return refuse(format!("the node runs {MAX_SESSIONS} sessions already"));
        }
        if let Some(problem) = request.problem() {
            return refuse(problem);
        }
        let (container, log) = match self.context.state.desired_one(workload) {
            Some(desired) => {
                let container = container_id(workload, &desired.spec.revision);
                let log = self.context.logs.path(&container);
                (container, log)
            }
            None => match (&request, self.context.logs.newest_retired(workload)) {
                (SessionRequest::Logs { .. }, Some(retired)) => retired,
                (SessionRequest::Logs { .. }, None) => {
                    return refuse(format!(
                        "workload {}/{} does not run on this node, and no log of it is kept",
                        workload.job, workload.replica
                    ));
                }
                (SessionRequest::Exec { .. }, _) => {
                    return refuse(format!(
                        "workload {}/{} does not run on this node",
                        workload.job, workload.replica
                    ));
                }
            },
        };
        match &request {
            SessionRequest::Logs {
                follow,
                tail_lines,
                since_ms,
            } => tracing::info!(
                %session, %requester, %oracle, job = workload.job, replica = workload.replica,
                follow, tail_lines, ?since_ms, "logs session opened"
            ),
            SessionRequest::Exec { argv, tty, .. } => tracing::info!(
                %session, %requester, %oracle, job = workload.job, replica = workload.replica,
                ?argv, tty, "exec session opened"
            ),
        }
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        self.running.insert(
            session.clone(),
            Running {
                oracle,
                next_input: 0,
                input: input_tx,
            },
        );
        self.context
            .metrics
            .sessions_open
            .set(self.running.len() as i64);
        let context = self.context.clone();
        let ended = ended.clone();
        tokio::spawn(async move {
            let kind = match request {
                SessionRequest::Logs { .. } => "logs",
                SessionRequest::Exec { .. } => "exec",
            };
            let work = run_session(&context, &out, workload, container, log, request, input_rx);
            let end = tokio::time::timeout(MAX_SESSION_TIME, work)
                .await
                .unwrap_or_else(|_| SessionEnd::Failed {
                    reason: format!("the session ran {MAX_SESSION_TIME:?}, the most allowed"),
                });
            let outcome = match &end {
                SessionEnd::Exited { .. } => "exited",
                SessionEnd::Done => "done",
                SessionEnd::Failed { .. } => "failed",
            };
            context
                .metrics
                .sessions
                .get_or_create(&CommandLabels {
                    kind: kind.into(),
                    outcome: outcome.into(),
                })
                .inc();
            tracing::info!(session = %out.session, ?end, "session ended");
            out.end(end).await;
            let _ = ended.send(out.session.clone()).await;
        });
    }

    fn input(&mut self, input: SessionInput, oracle: Address) {
        let Some(running) = self.running.get_mut(&input.session) else {
            tracing::debug!(session = %input.session, "input for no open session");
            return;
        };
        if running.oracle != oracle {
            tracing::warn!(session = %input.session, %oracle, "input refused: another oracle opened the session");
            return;
        }
        if input.seq != running.next_input {
            tracing::warn!(
                session = %input.session,
                seq = input.seq,
                expected = running.next_input,
                "input refused: out of sequence"
            );
            return;
        }
        running.next_input += 1;
        if running.input.try_send(input).is_err() {
            tracing::warn!("session input queue full; input dropped");
        }
    }
}

/// Runs one session to its end.
async fn run_session(
    context: &SessionContext,
    out: &Output,
    workload: WorkloadId,
    container: String,
    log: PathBuf,
    request: SessionRequest,
    input: mpsc::Receiver<SessionInput>,
) -> SessionEnd {
    match request {
        SessionRequest::Logs {
            follow,
            tail_lines,
            since_ms,
        } => {
            let ask = LogsAsk {
                follow,
                tail_lines,
                since_ms,
            };
            stream_logs(context, out, workload, (&container, &log), ask, input).await
        }
        SessionRequest::Exec {
            argv,
            tty,
            size,
            stdin,
        } => {
            let spec = AttachSpec {
                args: argv,
                terminal: tty.then(|| size.unwrap_or((80, 24))),
                stdin,
            };
            run_exec(context, out, &container, &spec, input).await
        }
    }
}

/// What a logs session asks for.
struct LogsAsk {
    follow: bool,
    tail_lines: u32,
    since_ms: Option<u64>,
}

async fn stream_logs(
    context: &SessionContext,
    out: &Output,
    workload: WorkloadId,
    (container, path): (&str, &std::path::Path),
    ask: LogsAsk,
    mut input: mpsc::Receiver<SessionInput>,
) -> SessionEnd {
    let lines = usize::try_from(ask.tail_lines).unwrap_or(usize::MAX);
    let read = match ask.since_ms {
        Some(since) => {
            let start = context.logs.offset_since(container, since);
            logs::read_from(path, start)
                .map(|(bytes, next)| (logs::last_lines(&bytes, lines).to_vec(), next))
        }
        None => logs::tail(path, lines),
    };
    let (first, mut offset) = match read {
        Ok(read) => read,
        Err(e) => {
            return SessionEnd::Failed {
                reason: format!("cannot read the log: {e}"),
            };
        }
    };
    if let Err(end) = out.send(Stream::Log, &first).await {
        return end;
    }
    while ask.follow && context.state.desired_one(workload).is_some() {
        tokio::select! {
            message = input.recv() => match message {
                Some(message) if !message.close => continue,
                _ => return SessionEnd::Done,
            },
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
        match logs::read_from(path, offset) {
            Ok((bytes, next)) => {
                offset = next;
                if let Err(end) = out.send(Stream::Log, &bytes).await {
                    return end;
                }
            }
            Err(e) => {
                return SessionEnd::Failed {
                    reason: format!("cannot read the log: {e}"),
                };
            }
        }
    }
    SessionEnd::Done
}

async fn run_exec(
    context: &SessionContext,
    out: &Output,
    container: &str,
    spec: &AttachSpec,
    mut input: mpsc::Receiver<SessionInput>,
) -> SessionEnd {
    let dir = context.dir.join(out.session.as_str());
    let attached = match context
        .containerd
        .exec_attached(container, spec, &dir)
        .await
    {
        Ok(attached) => attached,
        Err(e) => {
            return SessionEnd::Failed {
                reason: e.to_string(),
            };
        }
    };
    let Attached {
        container,
        exec_id,
        dir,
        mut stdin,
        stdout,
        stderr,
    } = attached;
    let exited = Arc::new(Notify::new());
    let forward_stdout = tokio::spawn(forward(out.clone(), Stream::Stdout, stdout, exited.clone()));
    let forward_stderr =
        stderr.map(|pipe| tokio::spawn(forward(out.clone(), Stream::Stderr, pipe, exited.clone())));
    let containerd = &context.containerd;
    let wait = containerd.wait_attached(&container, &exec_id);
    tokio::pin!(wait);
    let mut listening = true;
    let status = loop {
        tokio::select! {
            status = &mut wait => break status,
            message = input.recv(), if listening => {
                let Some(message) = message.filter(|m| !m.close) else {
                    tracing::info!(session = %out.session, "the CSP left; killing the exec");
                    listening = false;
                    if let Err(e) = containerd.kill_attached(&container, &exec_id).await {
                        tracing::warn!("cannot kill exec: {e}");
                    }
                    continue;
                };
                if let Err(reason) = feed(containerd, &container, &exec_id, &mut stdin, message).await {
                    tracing::warn!(session = %out.session, "session input failed: {reason}");
                }
            }
        }
    };
    exited.notify_waiters();
    let _ = forward_stdout.await;
    if let Some(task) = forward_stderr {
        let _ = task.await;
    }
    containerd.finish_attached(&container, &exec_id, &dir).await;
    match status {
        Ok(code) => SessionEnd::Exited { code },
        Err(e) => SessionEnd::Failed {
            reason: e.to_string(),
        },
    }
}

/// Carries one input out: bytes to stdin, end of input, a new terminal size.
async fn feed(
    containerd: &Containerd,
    container: &str,
    exec_id: &str,
    stdin: &mut Option<tokio::net::unix::pipe::Sender>,
    message: SessionInput,
) -> Result<(), String> {
    if !message.data.is_empty() {
        let bytes = decode_data(&message.data).ok_or("input is not base64 of a chunk")?;
        let pipe = stdin
            .as_mut()
            .ok_or("the command was started without stdin")?;
        pipe.write_all(&bytes)
            .await
            .map_err(|e| format!("cannot write stdin: {e}"))?;
    }
    if let Some(size) = message.resize {
        containerd
            .resize_attached(container, exec_id, size)
            .await
            .map_err(|e| e.to_string())?;
    }
    if message.eof && stdin.take().is_some() {
        containerd
            .close_attached_stdin(container, exec_id)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Forwards what `pipe` yields as `stream` until the process exits, then what is left in it.
async fn forward(
    out: Output,
    stream: Stream,
    mut pipe: tokio::net::unix::pipe::Receiver,
    exited: Arc<Notify>,
) {
    let mut buffer = vec![0u8; MAX_CHUNK_BYTES];
    let done = exited.notified();
    tokio::pin!(done);
    loop {
        tokio::select! {
            read = pipe.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.send(stream, &buffer[..n]).await.is_err() {
                        return;
                    }
                }
            },
            () = &mut done => break,
        }
    }
    // The process is gone: send what it wrote last, until the pipe stays quiet (the agent
    // holds the pipe's other end too, so it never reads as ended).
    while let Ok(Ok(n)) = tokio::time::timeout(DRAIN_QUIET, pipe.read(&mut buffer)).await {
        if n == 0 || out.send(stream, &buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// One session's numbered output.
#[derive(Clone)]
struct Output {
    context: SessionContext,
    session: SessionId,
    topic: String,
    seq: Arc<std::sync::atomic::AtomicU64>,
    order: Arc<tokio::sync::Mutex<()>>,
}

impl Output {
    fn new(context: SessionContext, session: SessionId, oracle: &Address) -> Self {
        let topic = context.topics.session_output(&context.node, oracle);
        Self {
            context,
            session,
            topic,
            seq: Arc::default(),
            order: Arc::default(),
        }
    }

    /// Publishes `bytes` of `stream`, in chunks; the session's end when it cannot.
    async fn send(&self, stream: Stream, bytes: &[u8]) -> Result<(), SessionEnd> {
        for chunk in bytes.chunks(MAX_CHUNK_BYTES) {
            self.publish(stream, encode_data(chunk), None).await?;
        }
        Ok(())
    }

    /// Publishes the session's last output.
    async fn end(&self, end: SessionEnd) {
        let _ = self.publish(Stream::Log, String::new(), Some(end)).await;
    }

    async fn publish(
        &self,
        stream: Stream,
        data: String,
        end: Option<SessionEnd>,
    ) -> Result<(), SessionEnd> {
        let _order = self.order.lock().await;
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let message = SessionOutput {
            session: self.session.clone(),
            seq,
            stream,
            data,
            end,
        };
        let envelope =
            self.context
                .sealer
                .seal(&message, now_ms())
                .map_err(|e| SessionEnd::Failed {
                    reason: format!("cannot sign output: {e}"),
                })?;
        let bytes = envelope.to_bytes();
        let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
        while !self.context.link.publish(&self.topic, bytes.clone()) {
            if tokio::time::Instant::now() >= deadline {
                return Err(SessionEnd::Failed {
                    reason: "the broker link stayed down".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}
