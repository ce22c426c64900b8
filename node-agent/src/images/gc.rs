//! Disk kept for images: a quota on the content store (the blobs of every image, as pulled)
//! checked before a pull, and garbage collection of pulled images no desired workload has used
//! for a while. Images imported from archives are the operator's and are never deleted.
//!
//! [`Usage`] is the pure bookkeeping (when each image was last needed, which may go);
//! [`ImageGc`] applies it to containerd.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::metrics::ImageMetrics;
use crate::runtime::containerd::{Containerd, RuntimeError};

/// A pulled image this recent is never removed to make room: a workload is about to use it.
const FRESH_MS: u64 = 60_000;

/// Why an image does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the image needs {need_mib} MiB but the node's image quota of {quota_mib} MiB leaves {free_mib} MiB free, even after removing unused images"
)]
pub struct QuotaShort {
    /// MiB the pull needs.
    pub need_mib: u64,
    /// MiB free under the quota.
    pub free_mib: u64,
    /// The quota in MiB.
    pub quota_mib: u64,
}

/// Whether `need` more bytes fit when `used` of `quota` are taken (0: no quota).
pub fn check_room(quota: u64, used: u64, need: u64) -> Result<(), QuotaShort> {
    if quota == 0 || used.saturating_add(need) <= quota {
        return Ok(());
    }
    Err(QuotaShort {
        need_mib: need.div_ceil(1 << 20),
        free_mib: quota.saturating_sub(used) >> 20,
        quota_mib: quota >> 20,
    })
}

/// When each pulled image was last needed (or first seen, for one nobody has needed since the
/// agent started).
#[derive(Debug, Default)]
pub struct Usage {
    last_used: HashMap<String, u64>,
    in_use: BTreeSet<String>,
}

impl Usage {
    /// Records that the desired workloads need `images` at `now_ms`.
    pub fn needed(&mut self, images: BTreeSet<String>, now_ms: u64) {
        for image in &images {
            self.last_used.insert(image.clone(), now_ms);
        }
        self.in_use = images;
    }

    /// Of the `pulled` images, those no desired workload needs and none has for `horizon_ms`;
    /// images seen for the first time count from now. Forgets images no longer there.
    pub fn collectable(&mut self, pulled: &[String], now_ms: u64, horizon_ms: u64) -> Vec<String> {
        let present: BTreeSet<&String> = pulled.iter().collect();
        self.last_used.retain(|image, _| present.contains(image));
        pulled
            .iter()
            .filter(|image| !self.in_use.contains(*image))
            .filter(|image| {
                let last = *self.last_used.entry((*image).clone()).or_insert(now_ms);
                now_ms.saturating_sub(last) >= horizon_ms
            })
            .cloned()
            .collect()
    }
}

/// The quota and the collection, on containerd.
pub struct ImageGc {
    containerd: Containerd,
    usage: Mutex<Usage>,
    /// Most bytes the content store may hold (0: no limit).
    quota_bytes: u64,
    /// How long a pulled image may go unused before it is removed.
    unused_ms: u64,
    metrics: Arc<ImageMetrics>,
}

impl ImageGc {
    /// Collection on `containerd` with a quota of `quota_bytes` (0: none), removing pulled
    /// images unused for `unused_ms` (counted in `metrics`).
    pub fn new(
        containerd: Containerd,
        quota_bytes: u64,
        unused_ms: u64,
        metrics: Arc<ImageMetrics>,
    ) -> Self {
        Self {
            containerd,
            usage: Mutex::default(),
            quota_bytes,
            unused_ms,
            metrics,
        }
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the images the desired workloads need at `now_ms`.
    pub fn needed(&self, images: BTreeSet<String>, now_ms: u64) {
        self.usage().needed(images, now_ms);
    }

    /// Removes the pulled images unused for longer than the horizon; returns their names.
    pub async fn sweep(&self, now_ms: u64) -> Result<Vec<String>, RuntimeError> {
        self.remove_unused(now_ms, self.unused_ms).await
    }

    async fn remove_unused(
        &self,
        now_ms: u64,
        horizon_ms: u64,
    ) -> Result<Vec<String>, RuntimeError> {
        let pulled = self.containerd.pulled_images().await?;
        let going = self.usage().collectable(&pulled, now_ms, horizon_ms);
        for image in &going {
            self.containerd.remove_image(image).await?;
            self.metrics.removed.inc();
            tracing::info!(image, "removed an image no workload used");
        }
        Ok(going)
    }

    /// Makes sure `need` more bytes fit under the quota, removing every pulled image no
    /// workload needs (but those pulled in the last minute) when they would not.
    pub async fn make_room(&self, need: u64, now_ms: u64) -> Result<(), MakeRoomError> {
        if self.quota_bytes == 0 {
            return Ok(());
        }
        let used = self.containerd.content_bytes().await?;
        if check_room(self.quota_bytes, used, need).is_ok() {
            return Ok(());
        }
        self.remove_unused(now_ms, FRESH_MS).await?;
        let used = self.containerd.content_bytes().await?;
        Ok(check_room(self.quota_bytes, used, need)?)
    }
}

/// Why room could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MakeRoomError {
    /// The image does not fit.
    #[error(transparent)]
    Short(#[from] QuotaShort),
    /// containerd failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn room_is_what_the_quota_leaves() {
        assert!(check_room(0, u64::MAX, 1).is_ok(), "no quota");
        assert!(check_room(100 << 20, 60 << 20, 40 << 20).is_ok());
        assert_eq!(
            check_room(100 << 20, 70 << 20, 40 << 20),
            Err(QuotaShort {
                need_mib: 40,
                free_mib: 30,
                quota_mib: 100
            })
        );
    }

    #[test]
    fn only_images_unused_past_the_horizon_go() {
        let mut usage = Usage::default();
        let pulled = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        usage.needed(set(&["a", "b"]), 1_000);
        assert!(
            usage.collectable(&pulled, 1_000, 500).is_empty(),
            "c counts from now"
        );
        usage.needed(set(&["a"]), 1_200);
        assert_eq!(usage.collectable(&pulled, 1_400, 500), Vec::<String>::new());
        assert_eq!(usage.collectable(&pulled, 1_500, 500), vec!["b", "c"]);
        assert_eq!(
            usage.collectable(&pulled, 9_000, 0),
            vec!["b", "c"],
            "an image in use never goes"
        );
    }

    #[test]
    fn images_gone_from_containerd_are_forgotten() {
        let mut usage = Usage::default();
        usage.needed(set(&["a"]), 1_000);
        usage.needed(BTreeSet::new(), 2_000);
        assert!(usage.collectable(&[], 3_000, 0).is_empty());
        assert_eq!(
            usage.collectable(&["a".to_owned()], 3_000, 500),
            Vec::<String>::new(),
            "pulled again: counts from now"
        );
    }
}
