//! The Redis-protocol server over an [`Engine`]: one namespace per listener (the caller's, known
//! from where the connection came in, so no password travels), pipelined commands answered in
//! order, bounded buffers, connections and idle time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::engine::Engine;
use crate::resp::{self, MAX_ARG, Reply};

/// Connections one listener serves at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may send nothing before it is closed.
pub const IDLE: Duration = Duration::from_secs(600);

/// Most unparsed bytes held for one connection: one largest command and a read's worth.
const MAX_BUFFER: usize = MAX_ARG + (64 << 10);

/// Serves `listener` for `namespace` until the task is dropped; `now_ms` is the clock.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    namespace: String,
    now_ms: fn() -> u64,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let namespace: Arc<str> = namespace.into();
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
        let (engine, namespace) = (engine.clone(), namespace.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &engine, &namespace, now_ms).await {
                tracing::debug!("CSTORE connection closed: {e}");
            }
            drop(slot);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    engine: &Engine,
    namespace: &str,
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
        loop {
            match resp::parse(&buffer[used..]) {
                Ok(Some((args, len))) => {
                    used += len;
                    if args.is_empty() {
                        continue;
                    }
                    let reply = match engine.execute(namespace, &args, now_ms()) {
                        Ok((reply, _)) => reply,
                        Err(e) => Reply::err(e.to_string()),
                    };
                    reply.write(&mut out);
                }
                Ok(None) => break,
                Err(e) => {
                    Reply::err(e.to_string()).write(&mut out);
                    stream.write_all(&out).await?;
                    return Ok(());
                }
            }
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
