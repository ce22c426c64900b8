//! What a replica needs, what a node offers, and why a node cannot take a replica.

use std::collections::BTreeMap;
use std::fmt;

use alloy_primitives::Address;
use r1_crds::pricing::ResourceAmounts;
use r1_protocol::messages::Resources;

use crate::decide::liveness::NodeLiveness;

/// What one replica needs on its node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Demand {
    /// CPU, millicores.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Disk, bytes (0 when the job leaves it to its class and the class is not known here).
    pub disk_bytes: u64,
    /// Whole GPUs.
    pub gpu: u32,
    /// GPU model required (compared ignoring ASCII case), if any.
    pub gpu_model: Option<String>,
}

impl Demand {
    /// The amounts alone, to take from a node's free resources.
    pub const fn amounts(&self) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
            disk_bytes: self.disk_bytes,
            gpu: self.gpu,
        }
    }

    /// The demand of a job's parsed `spec.resources`.
    pub fn from_amounts(amounts: &ResourceAmounts, gpu_model: Option<String>) -> Self {
        Self {
            cpu_millis: amounts.cpu_millis,
            memory_bytes: amounts.memory_bytes,
            disk_bytes: amounts.disk_bytes.unwrap_or(0),
            gpu: amounts.gpu,
            gpu_model,
        }
    }
}

/// One node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node's EVM address.
    pub node: Address,
    /// Owner of the node's licence; replicas spread across owners when possible.
    pub operator: Address,
    /// Whether the node has an active, non-blacklisted licence.
    pub licensed: bool,
    /// This oracle's view of the node.
    pub liveness: NodeLiveness,
    /// Labels the node advertises (matched against `nodeSelector`).
    pub labels: BTreeMap<String, String>,
    /// Free resources, as last reported (already net of the workloads it runs).
    pub free: Resources,
    /// GPU model, when the node has GPUs.
    pub gpu_model: Option<String>,
}

/// Why a node cannot take a new replica. The order is the order of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Already runs a replica of the job, or was excluded by the caller.
    Taken,
    /// No active licence.
    NotLicensed,
    /// Not confirmed alive by this oracle.
    NotAlive,
    /// A `nodeSelector` label is missing or different.
    SelectorMismatch,
    /// A GPU model was requested and the node has another (or none).
    GpuModelMismatch,
    /// Not enough free CPU.
    InsufficientCpu,
    /// Not enough free memory.
    InsufficientMemory,
    /// Not enough free disk.
    InsufficientDisk,
    /// Not enough free GPUs.
    InsufficientGpu,
}

impl Rejection {
    /// Human wording for conditions.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Taken => "already used by this job",
            Self::NotLicensed => "not licensed",
            Self::NotAlive => "not alive",
            Self::SelectorMismatch => "not matching nodeSelector",
            Self::GpuModelMismatch => "wrong GPU model",
            Self::InsufficientCpu => "insufficient CPU",
            Self::InsufficientMemory => "insufficient memory",
            Self::InsufficientDisk => "insufficient disk",
            Self::InsufficientGpu => "insufficient GPU",
        }
    }
}

/// How many nodes were rejected for each reason, for an `Unschedulable`-style condition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rejections(pub BTreeMap<Rejection, u32>);

impl Rejections {
    /// Counts one more node rejected for `why`.
    pub fn add(&mut self, why: Rejection) {
        *self.0.entry(why).or_insert(0) += 1;
    }

    /// Nodes considered in total.
    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no candidate nodes");
        }
        write!(f, "0/{} nodes available:", self.total())?;
        for (i, (why, count)) in self.0.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{count} {}", why.describe())?;
        }
        Ok(())
    }
}

/// Whether `labels` carry every `selector` label with the same value.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Whether the node's GPU model satisfies the demand's.
pub fn gpu_model_matches(demand: &Demand, node_model: Option<&str>) -> bool {
    match (&demand.gpu_model, node_model) {
        (None, _) => true,
        (Some(wanted), Some(model)) => wanted.eq_ignore_ascii_case(model),
        (Some(_), None) => false,
    }
}

/// Whether a node may keep a replica it already runs: licensed, not confirmed lost, and still
/// matching the selector and GPU model. Free resources are not rechecked — they already
/// account for the running replica.
pub fn may_keep(
    candidate: &Candidate,
    demand: &Demand,
    selector: &BTreeMap<String, String>,
) -> bool {
    candidate.licensed
        && candidate.liveness.may_keep_workloads()
        && selector_matches(selector, &candidate.labels)
        && gpu_model_matches(demand, candidate.gpu_model.as_deref())
}

/// The first reason the node cannot take a new replica needing `demand` with `free` left, or
/// `None` when it can.
pub fn reject(
    candidate: &Candidate,
    free: &Resources,
    demand: &Demand,
    selector: &BTreeMap<String, String>,
) -> Option<Rejection> {
    if !candidate.licensed {
        Some(Rejection::NotLicensed)
    } else if candidate.liveness != NodeLiveness::Alive {
        Some(Rejection::NotAlive)
    } else if !selector_matches(selector, &candidate.labels) {
        Some(Rejection::SelectorMismatch)
    } else if !gpu_model_matches(demand, candidate.gpu_model.as_deref()) {
        Some(Rejection::GpuModelMismatch)
    } else if free.cpu_millis < demand.cpu_millis {
        Some(Rejection::InsufficientCpu)
    } else if free.memory_bytes < demand.memory_bytes {
        Some(Rejection::InsufficientMemory)
    } else if free.disk_bytes < demand.disk_bytes {
        Some(Rejection::InsufficientDisk)
    } else if free.gpu < demand.gpu {
        Some(Rejection::InsufficientGpu)
    } else {
        None
    }
}

/// Nodes for the decisions' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use alloy_primitives::Address;
    use r1_protocol::messages::Resources;

    use super::Candidate;
    use crate::decide::liveness::NodeLiveness;

    /// Licensed node `i` (operator `100 + i`) with room for many small replicas, no GPU.
    pub fn candidate(i: u8, liveness: NodeLiveness) -> Candidate {
        Candidate {
            node: Address::with_last_byte(i),
            operator: Address::with_last_byte(100 + i),
            licensed: true,
            liveness,
            labels: BTreeMap::new(),
            free: Resources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                disk_bytes: 1 << 40,
                gpu: 0,
            },
            gpu_model: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            node: Address::with_last_byte(1),
            operator: Address::with_last_byte(100),
            licensed: true,
            liveness: NodeLiveness::Alive,
            labels: BTreeMap::from([("kyb".to_owned(), "true".to_owned())]),
            free: Resources {
                cpu_millis: 2000,
                memory_bytes: 4 << 30,
                disk_bytes: 20 << 30,
                gpu: 1,
            },
            gpu_model: Some("NVIDIA L4".to_owned()),
        }
    }

    fn demand() -> Demand {
        Demand {
            cpu_millis: 1000,
            memory_bytes: 2 << 30,
            disk_bytes: 8 << 30,
            gpu: 0,
            gpu_model: None,
        }
    }

    #[test]
    fn every_check_in_order() {
        let selector = BTreeMap::from([("kyb".to_owned(), "true".to_owned())]);
        let c = candidate();
        let d = demand();
        assert_eq!(reject(&c, &c.free, &d, &selector), None);
        let cases: Vec<(Candidate, Demand, Rejection)> = vec![
            (
                Candidate {
                    licensed: false,
                    ..candidate()
                },
                demand(),
                Rejection::NotLicensed,
            ),
            (
                Candidate {
                    liveness: NodeLiveness::Suspect,
                    ..candidate()
                },
                demand(),
                Rejection::NotAlive,
            ),
            (
                Candidate {
                    liveness: NodeLiveness::Unknown,
                    ..candidate()
                },
                demand(),
                Rejection::NotAlive,
            ),
            (
                Candidate {
                    labels: BTreeMap::new(),
                    ..candidate()
                },
                demand(),
                Rejection::SelectorMismatch,
            ),
            (
                candidate(),
                Demand {
                    gpu_model: Some("H100".to_owned()),
                    ..demand()
                },
                Rejection::GpuModelMismatch,
            ),
            (
                Candidate {
                    gpu_model: None,
                    ..candidate()
                },
                Demand {
                    gpu_model: Some("l4".to_owned()),
                    ..demand()
                },
                Rejection::GpuModelMismatch,
            ),
            (
                candidate(),
                Demand {
                    cpu_millis: 2001,
                    ..demand()
                },
                Rejection::InsufficientCpu,
            ),
            (
                candidate(),
                Demand {
                    memory_bytes: 5 << 30,
                    ..demand()
                },
                Rejection::InsufficientMemory,
            ),
            (
                candidate(),
                Demand {
                    disk_bytes: 21 << 30,
                    ..demand()
                },
                Rejection::InsufficientDisk,
            ),
            (
                candidate(),
                Demand { gpu: 2, ..demand() },
                Rejection::InsufficientGpu,
            ),
        ];
        for (c, d, why) in cases {
            assert_eq!(reject(&c, &c.free, &d, &selector), Some(why), "{why:?}");
        }
        let gpu = Demand {
            gpu: 1,
            gpu_model: Some("nvidia l4".to_owned()),
            ..demand()
        };
        assert_eq!(reject(&c, &c.free, &gpu, &selector), None);
    }

    #[test]
    fn keeping_ignores_resources_and_suspicion() {
        let selector = BTreeMap::new();
        let d = Demand {
            cpu_millis: 1 << 40,
            ..demand()
        };
        assert!(may_keep(
            &Candidate {
                liveness: NodeLiveness::Suspect,
                ..candidate()
            },
            &d,
            &selector
        ));
        assert!(may_keep(
            &Candidate {
                liveness: NodeLiveness::Unknown,
                ..candidate()
            },
            &d,
            &selector
        ));
        assert!(!may_keep(
            &Candidate {
                liveness: NodeLiveness::Lost,
                ..candidate()
            },
            &d,
            &selector
        ));
        assert!(!may_keep(
            &Candidate {
                licensed: false,
                ..candidate()
            },
            &d,
            &selector
        ));
        let other = BTreeMap::from([("kyb".to_owned(), "false".to_owned())]);
        assert!(!may_keep(&candidate(), &d, &other));
    }

    #[test]
    fn capacity_arithmetic_and_demand_amounts() {
        let free = candidate()
            .free
            .minus(&Demand { gpu: 3, ..demand() }.amounts());
        assert_eq!(
            free,
            Resources {
                cpu_millis: 1000,
                memory_bytes: 2 << 30,
                disk_bytes: 12 << 30,
                gpu: 0
            }
        );
        let amounts = ResourceAmounts {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
            disk_bytes: None,
            gpu: 1,
        };
        let d = Demand::from_amounts(&amounts, Some("L4".to_owned()));
        assert_eq!(
            (d.cpu_millis, d.memory_bytes, d.disk_bytes, d.gpu),
            (500, 1 << 30, 0, 1)
        );
    }

    #[test]
    fn rejections_read_like_a_scheduler_message() {
        let mut r = Rejections::default();
        assert_eq!(r.to_string(), "no candidate nodes");
        r.add(Rejection::InsufficientMemory);
        r.add(Rejection::InsufficientMemory);
        r.add(Rejection::SelectorMismatch);
        assert_eq!(
            r.to_string(),
            "0/3 nodes available: 1 not matching nodeSelector, 2 insufficient memory"
        );
    }
}
