//! `r1ctl node`: asks a node agent, over its local API socket, what it runs (`ps`), who it is
//! (`info`), and streams a workload's output (`logs`).

use std::io::Write;
use std::path::Path;

use r1_protocol::node_api::{self, InfoRequest, ListWorkloadsRequest, LogsRequest};

/// A failure talking to the node agent.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The socket cannot be reached.
    #[error(
        "cannot reach the node agent at {socket}: {reason} (is r1-node running? is --socket right?)"
    )]
    Connect {
        /// Socket path.
        socket: String,
        /// Transport error.
        reason: String,
    },
    /// The agent answered with an error.
    #[error("node agent: {0}")]
    Rpc(String),
    /// A CSTORE command was run and its reply is an error (`ERR ...`, `WRONGTYPE ...`).
    #[error("(error) {0}")]
    Reply(String),
    /// The workload argument is not `<job>/<replica>`.
    #[error("workload {0:?} is not <job>/<replica>, e.g. 12/0")]
    WorkloadRef(String),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn client(
    socket: &Path,
) -> Result<node_api::node_api_client::NodeApiClient<tonic::transport::Channel>, NodeError> {
    node_api::connect(socket)
        .await
        .map_err(|e| unreachable_socket(socket, e))
}

/// The error of a node socket that cannot be reached (every `r1ctl` group on the socket).
pub(crate) fn unreachable_socket(socket: &Path, reason: impl std::fmt::Display) -> NodeError {
    NodeError::Connect {
        socket: socket.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The error of a failed call on the node socket.
pub(crate) fn rpc(status: tonic::Status) -> NodeError {
    NodeError::Rpc(status.message().to_owned())
}

/// Prints the node's identity and capacity.
pub async fn info(socket: &Path, out: &mut impl Write) -> Result<(), NodeError> {
    let info = client(socket)
        .await?
        .info(InfoRequest {})
        .await
        .map_err(rpc)?
        .into_inner();
    writeln!(out, "address:  {}", info.address)?;
    writeln!(out, "alias:    {}", info.alias)?;
    writeln!(out, "version:  {}", info.version)?;
    writeln!(
        out,
        "broker:   {}",
        if info.broker_connected {
            "connected"
        } else {
            "disconnected"
        }
    )?;
    writeln!(
        out,
        "cpu:      {}m free of {}m",
        info.cpu_millis_free, info.cpu_millis_total
    )?;
    writeln!(
        out,
        "memory:   {} MiB free of {} MiB",
        info.memory_free >> 20,
        info.memory_total >> 20
    )?;
    if info.gpu_total > 0 {
        writeln!(out, "gpus:     {} × {}", info.gpu_total, info.gpu_model)?;
    }
    writeln!(out, "uptime:   {} s", info.uptime_seconds)?;
    if !info.licence.is_empty() {
        writeln!(out, "licence:  {}", info.licence)?;
    }
    Ok(())
}

/// Prints one line per workload: id, state, detail, restarts, ports, image.
pub async fn ps(socket: &Path, out: &mut impl Write) -> Result<(), NodeError> {
    let workloads = client(socket)
        .await?
        .list_workloads(ListWorkloadsRequest {})
        .await
        .map_err(rpc)?
        .into_inner()
        .workloads;
    writeln!(
        out,
        "{:<10} {:<11} {:<8} {:<18} {:<24} IMAGE",
        "WORKLOAD", "STATE", "RESTARTS", "PORTS", "DETAIL"
    )?;
    for w in workloads {
        let ports: Vec<String> = w
            .ports
            .iter()
            .map(|p| format!("{}->{}/{}", p.host_port, p.container_port, p.protocol))
            .collect();
        writeln!(
            out,
            "{:<10} {:<11} {:<8} {:<18} {:<24} {}",
            format!("{}/{}", w.job, w.replica),
            w.state,
            w.restarts,
            ports.join(","),
            w.detail,
            w.image
        )?;
    }
    Ok(())
}

/// Parses `<job>/<replica>`.
pub fn parse_workload(text: &str) -> Result<(u64, u32), NodeError> {
    let bad = || NodeError::WorkloadRef(text.to_owned());
    let (job, replica) = text.split_once('/').ok_or_else(bad)?;
    Ok((
        job.parse().map_err(|_| bad())?,
        replica.parse().map_err(|_| bad())?,
    ))
}

/// Writes a workload's output: the last `tail` lines (all for 0), then new output while
/// `follow`.
pub async fn logs(
    socket: &Path,
    workload: &str,
    tail: u32,
    follow: bool,
    out: &mut impl Write,
) -> Result<(), NodeError> {
    let (job, replica) = parse_workload(workload)?;
    let mut stream = client(socket)
        .await?
        .stream_logs(LogsRequest {
            job,
            replica,
            tail_lines: tail,
            follow,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    while let Some(chunk) = stream.message().await.map_err(rpc)? {
        out.write_all(&chunk.data)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_refs_parse() {
        assert_eq!(parse_workload("12/0").unwrap(), (12, 0));
        for bad in ["12", "a/0", "1/b", ""] {
            assert!(parse_workload(bad).is_err(), "{bad}");
        }
    }
}
