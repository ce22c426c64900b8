//! The Redis-protocol server over an [`Engine`]: one caller per listener (known from where the
//! connection came in, so no password travels), pipelined commands answered in order, bounded
//! buffers, connections and idle time.
//!
//! A connection starts in its caller's namespace (a job's: the one the oracles assigned it);
//! `NAMESPACE` names the current one and `NAMESPACE <name>` moves to another the caller may
//! read (its writes there are refused unless it owns it). `WAIT numreplicas timeout` answers
//! how many other replicas hold every write this node made before it (its latest
//! [`RECENT_WRITES`](crate::engine::RECENT_WRITES)), as Redis's `WAIT` covers every write the primary took before it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::access::{Access, Principal};
use crate::engine::Engine;
use crate::replicas::Replicas;
use crate::resp::{self, MAX_ARG, Reply};

/// Connections one listener serves at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may send nothing before it is closed.
pub const IDLE: Duration = Duration::from_secs(600);

/// How often `WAIT` looks whether the writes before it are sealed.
const SEAL_POLL: Duration = Duration::from_millis(1);

/// Longest `WAIT` (also what a timeout of 0, "forever" in Redis, means here).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Most unparsed bytes held for one connection: one largest command and a read's worth.
const MAX_BUFFER: usize = MAX_ARG + (64 << 10);

/// Who a listener serves, and where its connections start.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whose commands they are.
    pub who: Principal,
    /// The namespace connections start in; `None`: the job's own, once the oracles assigned it.
    pub namespace: Option<String>,
}

/// Serves `listener` for `caller` until the task is dropped; `replicas` answer `WAIT`;
/// `now_ms` is the clock.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    caller: Caller,
    replicas: Arc<dyn Replicas>,
    now_ms: fn() -> u64,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let mut stream = stream;
            let mut out = Vec::new();
            Reply::err("max number of clients reached").write(&mut out);
            let _ = stream.write_all(&out).await;
            continue;
        };
        let (engine, caller, replicas) = (engine.clone(), caller.clone(), replicas.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &engine, replicas.as_ref(), caller, now_ms).await {
                tracing::debug!("CSTORE connection closed: {e}");
            }
            drop(slot);
        });
    }
}

/// One connection's state: who it is and where it is.
struct Session<'a> {
    engine: &'a Engine,
    replicas: &'a dyn Replicas,
    caller: Caller,
}

impl Session<'_> {
    /// Runs one batch of pipelined commands: `NAMESPACE` and `WAIT` here, runs of other
    /// commands in the engine together.
    async fn run_batch(&mut self, commands: Vec<Vec<Vec<u8>>>, out: &mut Vec<u8>, now: u64) {
        let mut run: Vec<Vec<Vec<u8>>> = Vec::new();
        for args in commands {
            if args[0].eq_ignore_ascii_case(b"NAMESPACE") {
                self.engine.count(&args[0]);
                self.flush(&mut run, out, now);
                self.namespace_command(&args[1..], now).write(out);
            } else if args[0].eq_ignore_ascii_case(b"WAIT") {
                self.engine.count(&args[0]);
                self.flush(&mut run, out, now);
                self.wait_command(&args[1..]).await.write(out);
            } else {
                run.push(args);
            }
        }
        self.flush(&mut run, out, now);
    }

    fn flush(&mut self, run: &mut Vec<Vec<Vec<u8>>>, out: &mut Vec<u8>, now: u64) {
        if run.is_empty() {
            return;
        }
        // Without a namespace yet, the engine's check refuses every command with the reason.
        let namespace = self.current(now).unwrap_or_default();
        for reply in self
            .engine
            .execute_all(self.caller.who, &namespace, run, now)
        {
            reply.write(out);
        }
        run.clear();
    }

    /// The caller's namespace: the one it moved to, else its job's own once assigned.
    fn current(&mut self, now: u64) -> Option<String> {
        if self.caller.namespace.is_none()
            && let Principal::Job(job) = self.caller.who
        {
            self.caller.namespace = self.engine.own_namespace(job, now);
        }
        self.caller.namespace.clone()
    }

    fn namespace_command(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        match args {
            [] => Reply::Bulk(self.current(now).map(String::into_bytes)),
            [name] => {
                let Ok(name) = std::str::from_utf8(name) else {
                    return Reply::err("invalid namespace name");
                };
                match self.engine.check(self.caller.who, name, Access::Read, now) {
                    Ok(()) => {
                        self.caller.namespace = Some(name.to_owned());
                        Reply::Simple("OK")
                    }
                    Err(denied) => Reply::Error(format!("NOPERM {denied}")),
                }
            }
            _ => Reply::err("wrong number of arguments for 'namespace' command"),
        }
    }

    /// `WAIT numreplicas timeout`: how many other replicas hold every write this node made
    /// before it, waiting until `numreplicas` do or `timeout` ms pass (0: [`MAX_WAIT`]).
    async fn wait_command(&mut self, args: &[Vec<u8>]) -> Reply {
        let [wanted, timeout] = args else {
            return Reply::err("wrong number of arguments for 'wait' command");
        };
        let number = |bytes: &[u8]| std::str::from_utf8(bytes).ok()?.parse::<u64>().ok();
        let (Some(wanted), Some(timeout_ms)) = (number(wanted), number(timeout)) else {
            return Reply::err("value is not an integer or out of range");
        };
        let timeout = match timeout_ms {
            0 => MAX_WAIT,
            ms => Duration::from_millis(ms).min(MAX_WAIT),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        // The writes are asked about once sealed: no replica can hold them before.
        let writes = loop {
            if let Some(writes) = self.engine.settled_writes() {
                break writes;
            }
            if tokio::time::Instant::now() >= deadline {
                return Reply::Integer(0);
            }
            tokio::time::sleep(SEAL_POLL).await;
        };
        let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let held = self.replicas.confirm(writes, wanted, left).await;
        Reply::Integer(i64::try_from(held).unwrap_or(i64::MAX))
    }
}

async fn connection(
    mut stream: TcpStream,
    engine: &Engine,
    replicas: &dyn Replicas,
    caller: Caller,
    now_ms: fn() -> u64,
) -> std::io::Result<()> {
    let mut session = Session {
        engine,
        replicas,
        caller,
    };
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(16 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut out = Vec::with_capacity(16 << 10);
    let mut idle = Idle::new();
    loop {
        let read = idle.read(&mut stream, &mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut used = 0;
        let mut commands = Vec::new();
        let mut refused = None;
        loop {
            match resp::parse(&buffer[used..]) {
                Ok(Some((args, len))) => {
                    used += len;
                    if !args.is_empty() {
                        commands.push(args);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if !commands.is_empty() {
            session.run_batch(commands, &mut out, now_ms()).await;
        }
        if let Some(e) = refused {
            Reply::err(e.to_string()).write(&mut out);
            stream.write_all(&out).await?;
            return Ok(());
        }
        buffer.drain(..used);
        if buffer.len() > MAX_BUFFER {
            Reply::err("Protocol error: command too large").write(&mut out);
            stream.write_all(&out).await?;
            return Ok(());
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

/// The idle limit of one connection, with one timer for its whole life: a read does not arm a
/// timer of its own (arming and dropping one per pipelined batch is a measurable share of a
/// busy connection's time); when the timer fires, it is moved on to [`IDLE`] after the last
/// read, and the connection is closed only when that moment has passed.
struct Idle {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    last_read: tokio::time::Instant,
}

impl Idle {
    fn new() -> Self {
        let now = tokio::time::Instant::now();
        Self {
            timer: Box::pin(tokio::time::sleep_until(now + IDLE)),
            last_read: now,
        }
    }

    /// Reads into `chunk`; an error once the connection has sent nothing for [`IDLE`].
    async fn read(&mut self, stream: &mut TcpStream, chunk: &mut [u8]) -> std::io::Result<usize> {
        loop {
            tokio::select! {
                biased;
                read = stream.read(chunk) => {
                    self.last_read = tokio::time::Instant::now();
                    return read;
                }
                () = self.timer.as_mut() => {
                    let deadline = self.last_read + IDLE;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"));
                    }
                    self.timer.as_mut().reset(deadline);
                }
            }
        }
    }
}
