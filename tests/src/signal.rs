//! Sending signals to processes and process groups without `unsafe`, through the `kill` command.

use std::process::{Command, Stdio};

/// The signals the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Polite request to stop; programs may clean up first.
    Term,
    /// Immediate, uncatchable end.
    Kill,
    /// Interrupt, as from Ctrl-C.
    Int,
    /// Freeze a process (to simulate a hung peer).
    Stop,
    /// Resume a frozen process.
    Cont,
    /// Reload the configuration (mosquitto re-reads its password and ACL files).
    Hup,
}

impl Signal {
    /// The name `kill -s` understands.
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
            Signal::Hup => "HUP",
        }
    }
}

/// Why a signal could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The `kill` command itself could not be run.
    #[error("cannot run kill: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Sends `signal` to process `pid`; `Ok(false)` when no such process exists any more.
pub fn signal_process(pid: u32, signal: Signal) -> Result<bool, SignalError> {
    send(&pid.to_string(), signal)
}

/// Sends `signal` to every process in group `pgid`; `Ok(false)` when the group is empty.
pub fn signal_group(pgid: u32, signal: Signal) -> Result<bool, SignalError> {
    send(&format!("-{pgid}"), signal)
}

/// Runs `kill -s <signal> -- <target>`; a failure means the target is gone.
fn send(target: &str, signal: Signal) -> Result<bool, SignalError> {
    let status = Command::new("kill")
        .args(["-s", signal.name(), "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}
