//! What the oracle's configuration says about the Kubernetes door, ready to be embedded as a
//! section of the oracle's configuration file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the Kubernetes adapter. Every field has a default, so `kube: {}` is a valid
/// section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeSettings {
    /// Watch only this namespace; every namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How often every object is reconciled even when nothing changed, in seconds.
    #[serde(default = "default_resync_seconds")]
    pub resync_seconds: u64,
    /// Delay after a first failed reconcile, in milliseconds; it doubles with each failure in a
    /// row.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest delay between retries of a failing object, in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Name the oracle signs its Kubernetes events with (`reportingInstance`), e.g. its pod name
    /// or alias; `r1-oracle` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_instance: Option<String>,
    /// Give each job, and each tunnel its jobs use, an owner reference to their project, so
    /// deleting the project in the foreground deletes them (default true). Argo CD does not
    /// prune a resource that has an owner reference: turn this off when Argo CD must prune jobs
    /// removed from Git.
    #[serde(default = "default_owner_references")]
    pub owner_references: bool,
    /// Key file of the key CSPs delegate to this oracle (`r1ctl escrow delegate ADDRESS`),
    /// mounted from a Kubernetes Secret. With it, what the adapter mirrors is signed with this
    /// key and reaches every oracle, and mirrored jobs are funded from their owner's escrow;
    /// without it, mirrored resources stay in this oracle (a network of one oracle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_key_file: Option<PathBuf>,
    /// Whether mirrored jobs are funded (and extended) on chain with the delegate key, from the
    /// escrow's free balance (default true; needs `delegateKeyFile`).
    #[serde(default = "default_fund_jobs")]
    pub fund_jobs: bool,
}

fn default_resync_seconds() -> u64 {
    300
}

fn default_owner_references() -> bool {
    true
}

fn default_fund_jobs() -> bool {
    true
}

fn default_retry_initial_ms() -> u64 {
    1_000
}

fn default_retry_max_ms() -> u64 {
    60_000
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync_seconds: default_resync_seconds(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            reporting_instance: None,
            owner_references: default_owner_references(),
            delegate_key_file: None,
            fund_jobs: default_fund_jobs(),
        }
    }
}

impl KubeSettings {
    /// The periodic resync interval.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(1))
    }

    /// The delay before retrying an object that failed `failures` times in a row: the initial
    /// delay doubled per earlier failure, capped at the maximum.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let initial = self.retry_initial_ms.max(1);
        let max = self.retry_max_ms.max(initial);
        let doublings = failures.saturating_sub(1).min(32);
        let delay = initial.saturating_mul(1u64 << doublings).min(max);
        Duration::from_millis(delay)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let settings: KubeSettings = serde_yaml::from_str("{}").unwrap();
        assert_eq!(settings, KubeSettings::default());
        assert_eq!(settings.resync(), Duration::from_secs(300));
        let err = serde_yaml::from_str::<KubeSettings>("resync: 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let settings: KubeSettings =
            serde_yaml::from_str("namespace: shop\nretryInitialMs: 10").unwrap();
        assert_eq!(settings.namespace.as_deref(), Some("shop"));
        assert_eq!(settings.retry_initial_ms, 10);
        assert!(settings.owner_references);
        let settings: KubeSettings = serde_yaml::from_str("ownerReferences: false").unwrap();
        assert!(!settings.owner_references);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let settings = KubeSettings {
            retry_initial_ms: 500,
            retry_max_ms: 5_000,
            ..KubeSettings::default()
        };
        let delays: Vec<u128> = (1..=6)
            .map(|n| settings.retry_delay(n).as_millis())
            .collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 5_000, 5_000]);
        assert_eq!(settings.retry_delay(0).as_millis(), 500);
        assert_eq!(settings.retry_delay(u32::MAX).as_millis(), 5_000);
    }
}
