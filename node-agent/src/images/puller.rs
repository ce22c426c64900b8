//! The pulls in flight. The supervisor asks [`Puller::status`] for an image it lacks on every
//! pass: the first ask starts a pull in the background, later asks see its progress, a
//! failure is kept (and shown) until its retry falls due, with the delay doubling from
//! [`FIRST_RETRY_MS`] to [`MAX_RETRY_MS`] as Kubernetes backs off an image pull.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use r1_registry::{Client, Credentials};
use tokio::sync::Semaphore;

use super::from_peers::PeerBlobs;
use super::gc::ImageGc;
use super::metrics::{ImageMetrics, Outcome};
use super::pull::{Progress, Pull};
use crate::runtime::containerd::Containerd;

/// Delay before the first retry of a failed pull.
pub const FIRST_RETRY_MS: u64 = 5_000;
/// Longest delay between retries.
pub const MAX_RETRY_MS: u64 = 300_000;
/// Images pulled at the same time; more wait for a slot.
const PARALLEL_PULLS: usize = 2;
/// Time between two garbage collections of unused images.
pub const SWEEP_EVERY_MS: u64 = 10_000;

/// Where the pull of one image stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullStatus {
    /// Downloading: `percent` of its bytes are here.
    Pulling {
        /// Share downloaded, 0-100.
        percent: u8,
    },
    /// Failed; retried once the delay passes.
    BackOff {
        /// Why, with when the next try comes.
        reason: String,
    },
    /// Stored in containerd under its reference.
    Done,
}

enum Entry {
    Running(Arc<Progress>),
    Failed {
        reason: String,
        failures: u32,
        retry_at_ms: u64,
    },
    Done,
}

/// Delay before retrying a pull that failed `failures` times in a row.
pub fn retry_delay_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_MS)
}

/// What pulls need: the registry client, containerd, a directory for downloads, and the
/// peers to ask first (`None`: registry only).
pub struct PullerParts {
    /// Registry client.
    pub registry: Client,
    /// Where images go.
    pub containerd: Containerd,
    /// Downloads in flight; emptied at start (what an earlier run left there is incomplete).
    pub staging: PathBuf,
    /// Peers asked for blobs before the registry.
    pub peers: Option<PeerBlobs>,
    /// The image quota and garbage collection.
    pub gc: Arc<ImageGc>,
    /// Pulls and bytes counted.
    pub metrics: Arc<ImageMetrics>,
}

/// Runs image pulls in the background and remembers how each went.
#[derive(Clone)]
pub struct Puller {
    parts: Arc<PullerParts>,
    pulls: Arc<Mutex<HashMap<String, Entry>>>,
    slots: Arc<Semaphore>,
    wake: Arc<dyn Fn() + Send + Sync>,
    last_sweep_ms: Arc<AtomicU64>,
}

impl Puller {
    /// A puller over `parts`, calling `wake` when a pull ends.
    pub fn new(parts: PullerParts, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        match std::fs::remove_dir_all(&parts.staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&parts.staging)?;
        Ok(Self {
            parts: Arc::new(parts),
            pulls: Arc::default(),
            slots: Arc::new(Semaphore::new(PARALLEL_PULLS)),
            wake,
            last_sweep_ms: Arc::default(),
        })
    }

    /// Records the images (stored names) the desired workloads need at `now_ms`, forgets the
    /// failed pulls of images nobody needs any more and, at most every [`SWEEP_EVERY_MS`],
    /// removes in the background the pulled images unused for too long.
    pub fn needed(&self, images: BTreeSet<String>, now_ms: u64) {
        self.pulls()
            .retain(|name, entry| matches!(entry, Entry::Running(_)) || images.contains(name));
        self.parts.gc.needed(images, now_ms);
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep_ms.store(now_ms, Ordering::Relaxed);
        let gc = self.parts.gc.clone();
        tokio::spawn(async move {
            if let Err(e) = gc.sweep(now_ms).await {
                tracing::warn!("image garbage collection failed: {e}");
            }
        });
    }

    fn pulls(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.pulls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the pull of `reference` stands at `now_ms`; starts it when none runs and no
    /// failure's delay is pending.
    pub fn status(
        &self,
        reference: &str,
        credentials: Option<Credentials>,
        now_ms: u64,
    ) -> PullStatus {
        let name = super::stored_name(reference, credentials.as_ref());
        let mut pulls = self.pulls();
        let failures = match pulls.get(&name) {
            Some(Entry::Running(progress)) => {
                return PullStatus::Pulling {
                    percent: progress.percent(),
                };
            }
            Some(Entry::Done) => return PullStatus::Done,
            Some(Entry::Failed {
                reason,
                retry_at_ms,
                ..
            }) if now_ms < *retry_at_ms => {
                let seconds = (retry_at_ms - now_ms).div_ceil(1000);
                return PullStatus::BackOff {
                    reason: format!("{reason} (next try in {seconds} s)"),
                };
            }
            Some(Entry::Failed { failures, .. }) => *failures,
            None => 0,
        };
        let progress = Arc::new(Progress::default());
        pulls.insert(name, Entry::Running(progress.clone()));
        drop(pulls);
        tokio::spawn(
            self.clone()
                .pull(reference.to_owned(), credentials, progress, failures),
        );
        PullStatus::Pulling { percent: 0 }
    }

    /// Forgets how the pull of the image stored as `name` ended (the supervisor found the
    /// image, or lost it again and wants a new pull).
    pub fn forget(&self, name: &str) {
        let mut pulls = self.pulls();
        if !matches!(pulls.get(name), Some(Entry::Running(_))) {
            pulls.remove(name);
        }
    }

    async fn pull(
        self,
        reference: String,
        credentials: Option<Credentials>,
        progress: Arc<Progress>,
        failures: u32,
    ) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let started = std::time::Instant::now();
        let pull = Pull {
            registry: self.parts.registry.clone(),
            containerd: self.parts.containerd.clone(),
            staging: self.parts.staging.clone(),
            progress,
            peers: self.parts.peers.clone(),
            gc: self.parts.gc.clone(),
            metrics: self.parts.metrics.clone(),
        };
        let entry = match pull.run(&reference, credentials.as_ref()).await {
            Ok(digest) => {
                let metrics = &self.parts.metrics;
                metrics
                    .pulls
                    .get_or_create(&Outcome { outcome: "pulled" })
                    .inc();
                metrics
                    .pull_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    image = reference,
                    digest,
                    seconds = started.elapsed().as_secs_f64(),
                    "image pulled"
                );
                Entry::Done
            }
            Err(e) => {
                let failed = Outcome { outcome: "failed" };
                self.parts.metrics.pulls.get_or_create(&failed).inc();
                let failures = failures.saturating_add(1);
                let delay = retry_delay_ms(failures);
                tracing::warn!(image = reference, failures, "image pull failed: {e}");
                Entry::Failed {
                    reason: format!("image pull failed: {e}"),
                    failures,
                    retry_at_ms: r1_protocol::now_ms().saturating_add(delay),
                }
            }
        };
        let name = super::stored_name(&reference, credentials.as_ref());
        self.pulls().insert(name, entry);
        (self.wake)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_five_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..=9).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            [
                5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000
            ]
        );
        assert_eq!(retry_delay_ms(u32::MAX), MAX_RETRY_MS);
    }
}
