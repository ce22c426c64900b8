//! bore (crate `bore-cli`), the self-hostable tunnel server and client: the tunnel tests run a
//! real `bore server` on 127.0.0.1 and find the clients the node agents start in `/proc`.
//! `make deps` installs the binary into `~/.cache/r1/tools/bin` (`R1_BORE` overrides).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildGuard, ProcessError};
use crate::procfs;
use crate::wait::until;

/// bore's fixed control port: one bore server per machine at a time.
pub const CONTROL_PORT: u16 = 7835;

/// The `bore` binary: `R1_BORE`, else where `make deps` installs it.
pub fn binary() -> PathBuf {
    std::env::var_os("R1_BORE").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/r1/tools/bin/bore")
        },
        PathBuf::from,
    )
}

/// A `bore server` on 127.0.0.1, stopped when dropped.
pub struct BoreServer {
    _guard: ChildGuard,
}

impl BoreServer {
    /// Starts a server accepting clients that know `secret`, handing out public ports
    /// `min..=max`; waits until its control port accepts connections.
    pub fn start(log_dir: &Path, secret: &str, min: u16, max: u16) -> Result<Self, ProcessError> {
        let guard = ChildGuard::spawn_logged(
            Command::new(binary())
                .args(["server", "--bind-addr", "127.0.0.1"])
                .args([
                    "--min-port",
                    &min.to_string(),
                    "--max-port",
                    &max.to_string(),
                ])
                .env("BORE_SECRET", secret)
                .env("NO_COLOR", "1"),
            "bore-server",
            log_dir,
        )?;
        until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", CONTROL_PORT)).is_ok()
        });
        Ok(Self { _guard: guard })
    }
}

/// The pids of the `bore local` clients asking for public port `port`.
pub fn client_pids(port: u16) -> Vec<u32> {
    let port = port.to_string();
    procfs::processes()
        .into_iter()
        .filter(|p| {
            !p.is_zombie()
                && p.cmdline.get(1).is_some_and(|a| a == "local")
                && p.flag_value("--port") == Some(port.as_str())
        })
        .map(|p| p.pid)
        .collect()
}
