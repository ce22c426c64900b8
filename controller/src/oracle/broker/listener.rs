//! The broker gate's door: accepts TCP (TLS when configured) on the gate's port, caps the
//! number of connections, and runs a [`session`](super::session) per client; every refusal
//! is logged with the client's identity (when known) and reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::gate::Gate;
use super::session::{self, Ended};

/// Accepts clients on `listener` for ever, each in a task of its own.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) {
    let slots = Arc::new(Semaphore::new(gate.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "broker gate cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, cap = gate.max_connections, "broker gate refused a connection: too many connections");
            continue;
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let ended = match &gate.tls {
                None => session::run(stream, &gate).await,
                Some(acceptor) => {
                    match tokio::time::timeout(gate.connect_deadline, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => session::run(tls, &gate).await,
                        Ok(Err(error)) => Ended {
                            client: None,
                            refusal: Some(session::Refusal::Tls(error)),
                        },
                        Err(_) => Ended {
                            client: None,
                            refusal: Some(session::Refusal::ConnectTimeout(gate.connect_deadline)),
                        },
                    }
                }
            };
            record(peer, &ended);
        });
    }
}

/// Logs how the session of `peer` ended, when it was refused.
fn record(peer: SocketAddr, ended: &Ended) {
    let Some(refusal) = &ended.refusal else {
        return;
    };
    match &ended.client {
        Some(client) => tracing::warn!(
            %peer, client = %client.address, role = %client.role, reason = refusal.reason(),
            "broker gate disconnected a client: {refusal}"
        ),
        None => tracing::warn!(
            %peer, reason = refusal.reason(),
            "broker gate refused a connection: {refusal}"
        ),
    }
}
