//! `r1-test-broker --port <port> --topic-root <root> --oracles-file <file> [--cert <pem>
//! --key <pem>]`: the oracle's embedded broker (rumqttd behind the authenticating gate, same
//! configuration) on 127.0.0.1, as its own process, because rumqttd cannot be stopped
//! in-process and tests need a broker that goes away and comes back on the same port. The
//! oracles file (addresses, one a line) is read again at every CONNECT, so a test can add
//! oracles while the broker runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use r1_controller::oracle::broker::{Gate, GateOracles, listener, tls, upstream};
use r1_protocol::topics::Topics;

/// What the command line asks for.
struct Args {
    port: u16,
    topic_root: String,
    oracles_file: PathBuf,
    tls: Option<(PathBuf, PathBuf)>,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!(
                "r1-test-broker: {message}\nusage: r1-test-broker --port <port> --topic-root <root> \
                 --oracles-file <file> [--cert <pem> --key <pem>]"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("r1-test-broker: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(message) = runtime.block_on(serve(args)) {
        eprintln!("r1-test-broker: {message}");
    }
    ExitCode::FAILURE
}

/// Starts rumqttd and serves the gate until the listener fails.
async fn serve(args: Args) -> Result<(), String> {
    let acceptor = match &args.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            cert, key,
        )?)),
        None => None,
    };
    let upstream = tokio::task::spawn_blocking(upstream::start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let mut gate = Gate::new(
        upstream,
        Topics::new(args.topic_root),
        GateOracles::default(),
        acceptor,
    );
    gate.oracles_file = Some(args.oracles_file);
    listener::serve(socket, Arc::new(gate)).await;
    Ok(())
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut port = None;
    let mut topic_root = None;
    let mut oracles_file = None;
    let mut cert = None;
    let mut key = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => {
                port = Some(
                    value
                        .parse()
                        .map_err(|error| format!("bad port {value:?}: {error}"))?,
                )
            }
            "--topic-root" => topic_root = Some(value.clone()),
            "--oracles-file" => oracles_file = Some(PathBuf::from(value)),
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            _ => return Err(format!("unexpected argument {flag:?}")),
        }
    }
    Ok(Args {
        port: port.ok_or("--port is required")?,
        topic_root: topic_root.ok_or("--topic-root is required")?,
        oracles_file: oracles_file.ok_or("--oracles-file is required")?,
        tls: match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("--cert and --key go together".into()),
        },
    })
}
