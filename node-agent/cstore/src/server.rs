//! The Redis-protocol server over an [`Engine`]: one caller per listener (known from where the
//! connection came in, so no password travels), pipelined commands answered in order, bounded
//! buffers, connections and idle time.
//!
//! A connection starts in its caller's namespace (a job's: the one the oracles assigned it);
//! `NAMESPACE` names the current one and `NAMESPACE <name>` moves to another the caller may
//! read (its writes there are refused unless it owns it).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::access::{Access, Principal};
use crate::engine::Engine;
use crate::resp::{self, MAX_ARG, Reply};

/// Connections one listener serves at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may send nothing before it is closed.
pub const IDLE: Duration = Duration::from_secs(600);

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

/// Serves `listener` for `caller` until the task is dropped; `now_ms` is the clock.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    caller: Caller,
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
        let (engine, caller) = (engine.clone(), caller.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &engine, caller, now_ms).await {
                tracing::debug!("CSTORE connection closed: {e}");
            }
            drop(slot);
        });
    }
}

/// Runs one batch of pipelined commands for `caller`: `NAMESPACE` here, runs of other commands
/// in the engine together.
fn run_batch(
    engine: &Engine,
    caller: &mut Caller,
    commands: Vec<Vec<Vec<u8>>>,
    out: &mut Vec<u8>,
    now: u64,
) {
    let mut run: Vec<Vec<Vec<u8>>> = Vec::new();
    for args in commands {
        if !args[0].eq_ignore_ascii_case(b"NAMESPACE") {
            run.push(args);
            continue;
        }
        flush(engine, caller, &mut run, out, now);
        namespace_command(engine, caller, &args[1..], now).write(out);
    }
    flush(engine, caller, &mut run, out, now);
}

fn flush(
    engine: &Engine,
    caller: &mut Caller,
    run: &mut Vec<Vec<Vec<u8>>>,
    out: &mut Vec<u8>,
    now: u64,
) {
    if run.is_empty() {
        return;
    }
    // Without a namespace yet, the engine's check refuses every command with the reason.
    let namespace = current(engine, caller, now).unwrap_or_default();
    for reply in engine.execute_all(caller.who, &namespace, run, now) {
        reply.write(out);
    }
    run.clear();
}

/// The caller's namespace: the one it moved to, else its job's own once assigned.
fn current(engine: &Engine, caller: &mut Caller, now: u64) -> Option<String> {
    if caller.namespace.is_none()
        && let Principal::Job(job) = caller.who
    {
        caller.namespace = engine.own_namespace(job, now);
    }
    caller.namespace.clone()
}

fn namespace_command(engine: &Engine, caller: &mut Caller, args: &[Vec<u8>], now: u64) -> Reply {
    match args {
        [] => Reply::Bulk(current(engine, caller, now).map(String::into_bytes)),
        [name] => {
            let Ok(name) = std::str::from_utf8(name) else {
                return Reply::err("invalid namespace name");
            };
            match engine.check(caller.who, name, Access::Read, now) {
                Ok(()) => {
                    caller.namespace = Some(name.to_owned());
                    Reply::Simple("OK")
                }
                Err(denied) => Reply::Error(format!("NOPERM {denied}")),
            }
        }
        _ => Reply::err("wrong number of arguments for 'namespace' command"),
    }
}

async fn connection(
    mut stream: TcpStream,
    engine: &Engine,
    mut caller: Caller,
    now_ms: fn() -> u64,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(16 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut out = Vec::with_capacity(16 << 10);
    loop {
        let read = tokio::time::timeout(IDLE, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
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
            run_batch(engine, &mut caller, commands, &mut out, now_ms());
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
