//! Health checks the job asked for, run by the node against each running container: an HTTP
//! GET that must answer 2xx/3xx or a TCP connect, both from inside the container's network
//! namespace, or a command that must exit 0 inside the container.
//! Results feed the workload's `healthy` flag, which oracles wait for before retiring an old
//! revision during a rollout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_protocol::messages::{HealthCheckSpec, HealthProbe, WorkloadId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::ports::dial_in_namespace;
use crate::runtime::containerd::Containerd;
use crate::runtime::exec::ExecOutcome;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The latest verdict per workload: `None` until the first verdict.
pub type HealthTable = Arc<Mutex<BTreeMap<WorkloadId, bool>>>;

/// Whether an HTTP status line reports success (2xx or 3xx).
pub fn status_line_ok(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    parts.next().is_some_and(|v| v.starts_with("HTTP/"))
        && parts
            .next()
            .and_then(|code| code.parse::<u16>().ok())
            .is_some_and(|code| (200..400).contains(&code))
}

/// The container a prober checks.
#[derive(Clone)]
pub struct ProbeTarget {
    /// Init pid of its task: network probes dial from inside its network namespace.
    pub pid: u32,
    /// Its containerd id: exec probes run inside it.
    pub container: String,
    /// The containerd that runs it.
    pub containerd: Containerd,
}

/// Runs `probe` once against `target`.
pub async fn probe_once(target: &ProbeTarget, probe: &HealthProbe) -> Result<(), String> {
    let network = match probe {
        HealthProbe::Exec { command } => return exec_probe(target, command).await,
        HealthProbe::Tcp { port } => {
            tokio::time::timeout(PROBE_TIMEOUT, tcp_probe(target.pid, *port)).await
        }
        HealthProbe::Http { port, path } => {
            tokio::time::timeout(PROBE_TIMEOUT, http_probe(target.pid, *port, path)).await
        }
    };
    network.unwrap_or_else(|_| Err("probe timed out".into()))
}

async fn tcp_probe(pid: u32, port: u16) -> Result<(), String> {
    dial_in_namespace(pid, port)
        .await
        .map(|_| ())
        .map_err(|e| format!("tcp {port}: {e}"))
}

async fn http_probe(pid: u32, port: u16, path: &str) -> Result<(), String> {
    let mut stream = dial_in_namespace(pid, port)
        .await
        .map_err(|e| format!("http {port}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: r1-node\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("http {port}: {e}"))?;
    let mut head = vec![0u8; 64];
    let n = stream
        .read(&mut head)
        .await
        .map_err(|e| format!("http {port}: {e}"))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let line = text.lines().next().unwrap_or_default();
    if status_line_ok(line) {
        Ok(())
    } else {
        Err(format!("http {port}{path}: answered {line:?}"))
    }
}

/// Runs the command inside the container: exit status 0 passes; one still running after
/// the probe timeout is killed and fails.
async fn exec_probe(target: &ProbeTarget, command: &[String]) -> Result<(), String> {
    match target
        .containerd
        .exec(&target.container, command, PROBE_TIMEOUT)
        .await
    {
        Ok(ExecOutcome::Exited(0)) => Ok(()),
        Ok(ExecOutcome::Exited(code)) => Err(format!("exec {command:?}: exit status {code}")),
        Ok(ExecOutcome::TimedOut) => Err(format!(
            "exec {command:?}: still running after {} s, killed",
            PROBE_TIMEOUT.as_secs()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Consecutive-failure bookkeeping: healthy after one success, unhealthy after
/// `failure_threshold` failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdicts {
    failures: u32,
    /// The current verdict.
    pub healthy: Option<bool>,
}

impl Verdicts {
    /// Records one probe result under `threshold`.
    pub fn record(&mut self, ok: bool, threshold: u32) {
        if ok {
            self.failures = 0;
            self.healthy = Some(true);
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= threshold.max(1) {
                self.healthy = Some(false);
            }
        }
    }
}

/// How often a workload is probed during its first period while no probe has passed yet: a
/// replica is reported healthy a fraction of a second after it answers, not a period later.
const STARTUP_INTERVAL: Duration = Duration::from_millis(250);

/// When a prober probes and which results count: every `period`, but during the first period,
/// until a probe passes, every [`STARTUP_INTERVAL`], with only the first failure of that window
/// counted, so the failure threshold is reached as late as with the period alone.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    period: Duration,
    startup_ends: Instant,
}

impl Cadence {
    fn new(period: Duration, started: Instant) -> Self {
        Self {
            period,
            startup_ends: started + period,
        }
    }

    fn starting(&self, verdict: Option<bool>, now: Instant) -> bool {
        verdict.is_none() && now < self.startup_ends
    }

    /// Whether the result of a probe counts toward the verdict (`first`: the prober's first).
    fn counts(&self, verdict: Option<bool>, first: bool, passed: bool, now: Instant) -> bool {
        passed || first || !self.starting(verdict, now)
    }

    /// How long to wait for the next probe.
    fn pause(&self, verdict: Option<bool>, now: Instant) -> Duration {
        if self.starting(verdict, now) {
            STARTUP_INTERVAL
        } else {
            self.period
        }
    }
}

/// Starts probing workload `id` (running in `target`) per `spec`, writing verdicts to
/// `table` and calling `changed` whenever the verdict changes (so the node reports it at once).
/// The task runs until aborted.
pub fn spawn_prober(
    id: WorkloadId,
    target: ProbeTarget,
    spec: HealthCheckSpec,
    table: HealthTable,
    changed: Arc<dyn Fn() + Send + Sync>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(spec.initial_delay_s))).await;
        let period = Duration::from_secs(u64::from(spec.period_s.max(1)));
        let cadence = Cadence::new(period, Instant::now());
        let mut verdicts = Verdicts::default();
        let mut first = true;
        loop {
            let result = probe_once(&target, &spec.probe).await;
            let now = Instant::now();
            if cadence.counts(verdicts.healthy, first, result.is_ok(), now) {
                if let Err(reason) = &result {
                    tracing::debug!(?id, "health check failed: {reason}");
                }
                let before = verdicts.healthy;
                verdicts.record(result.is_ok(), spec.failure_threshold);
                if let (Some(healthy), Ok(mut table)) = (verdicts.healthy, table.lock()) {
                    table.insert(id, healthy);
                }
                if verdicts.healthy != before {
                    changed();
                }
            }
            first = false;
            tokio::time::sleep(cadence.pause(verdicts.healthy, Instant::now())).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(status_line_ok("HTTP/1.0 200 OK"));
        assert!(status_line_ok("HTTP/1.1 302 Found"));
        assert!(!status_line_ok("HTTP/1.1 404 Not Found"));
        assert!(!status_line_ok("HTTP/1.1 500"));
        assert!(!status_line_ok("SSH-2.0"));
        assert!(!status_line_ok(""));
    }

    #[test]
    fn a_starting_workload_is_probed_often_and_its_later_failures_wait_for_the_period() {
        let started = Instant::now();
        let period = Duration::from_secs(5);
        let cadence = Cadence::new(period, started);
        let early = started + Duration::from_secs(1);
        let late = started + Duration::from_secs(6);
        assert!(
            cadence.counts(None, true, false, started),
            "the first failure counts"
        );
        assert!(
            !cadence.counts(None, false, false, early),
            "not the next ones in the window"
        );
        assert!(
            cadence.counts(None, false, true, early),
            "a pass always counts"
        );
        assert!(
            cadence.counts(None, false, false, late),
            "after the window they count"
        );
        assert!(
            cadence.counts(Some(true), false, false, early),
            "once judged, all count"
        );
        assert_eq!(cadence.pause(None, early), STARTUP_INTERVAL);
        assert_eq!(cadence.pause(Some(true), early), period);
        assert_eq!(cadence.pause(None, late), period);
    }

    #[test]
    fn verdicts_need_consecutive_failures() {
        let mut v = Verdicts::default();
        v.record(false, 3);
        v.record(false, 3);
        assert_eq!(v.healthy, None);
        v.record(true, 3);
        assert_eq!(v.healthy, Some(true));
        v.record(false, 3);
        v.record(false, 3);
        assert_eq!(v.healthy, Some(true));
        v.record(false, 3);
        assert_eq!(v.healthy, Some(false));
        v.record(true, 3);
        assert_eq!(v.healthy, Some(true));
    }
}
