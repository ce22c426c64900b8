//! What the node offers: CPU, memory and disk capacity, GPUs (from `nvidia-smi` when present),
//! and what is still free once the desired workloads' reservations are subtracted. Oracles place
//! by reservations, not by momentary usage, so a quiet workload's share is never given away.

use std::path::Path;

use r1_protocol::messages::{NodeResources, Resources, WorkloadSpec};

use crate::runtime::spec::Device;

/// The node's capacity, read once at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capacity {
    /// CPU, memory, disk of the data directory's filesystem, and the number of GPUs.
    pub total: Resources,
    /// The GPUs themselves, to pass through.
    pub gpus: Gpus,
}

/// The node's GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gpus {
    /// Model name, e.g. `NVIDIA L4`.
    pub model: Option<String>,
    /// Device nodes of each GPU (`/dev/nvidia0`, …), plus the shared control devices.
    pub devices: Vec<Device>,
    /// Control devices every GPU workload needs (`/dev/nvidiactl`, `/dev/nvidia-uvm`).
    pub control: Vec<Device>,
}

impl Gpus {
    /// Number of GPUs.
    pub fn count(&self) -> u32 {
        u32::try_from(self.devices.len()).unwrap_or(u32::MAX)
    }
}

/// Reads the host's capacity; `data_dir` names the filesystem whose size counts as disk.
pub fn read_capacity(data_dir: &Path) -> Capacity {
    let cpu_millis = std::thread::available_parallelism()
        .map(|n| n.get() as u64 * 1000)
        .unwrap_or(1000);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| meminfo_total(&text))
        .unwrap_or(0);
    let disk_total = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    let gpus = read_gpus();
    Capacity {
        total: Resources {
            cpu_millis,
            memory_bytes: memory,
            disk_bytes: disk_total,
            gpu: gpus.count(),
        },
        gpus,
    }
}

fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn read_gpus() -> Gpus {
    let Ok(output) = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,index", "--format=csv,noheader"])
        .output()
    else {
        return Gpus::default();
    };
    if !output.status.success() {
        return Gpus::default();
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_nvidia_smi(&text, |path| device_numbers(Path::new(path)))
}

/// GPUs from `nvidia-smi --query-gpu=name,index --format=csv,noheader`, with device numbers
/// looked up by `numbers`.
pub fn parse_nvidia_smi(text: &str, numbers: impl Fn(&str) -> Option<(i64, i64)>) -> Gpus {
    let mut gpus = Gpus::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, index)) = line.rsplit_once(',') else {
            continue;
        };
        let path = format!("/dev/nvidia{}", index.trim());
        if let Some((major, minor)) = numbers(&path) {
            gpus.model.get_or_insert_with(|| name.trim().to_owned());
            gpus.devices.push(Device { path, major, minor });
        }
    }
    for control in ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"] {
        if let Some((major, minor)) = numbers(control) {
            gpus.control.push(Device {
                path: control.into(),
                major,
                minor,
            });
        }
    }
    gpus
}

fn device_numbers(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path).ok()?.rdev();
    let major = i64::try_from(nix::sys::stat::major(rdev)).ok()?;
    let minor = i64::try_from(nix::sys::stat::minor(rdev)).ok()?;
    Some((major, minor))
}

/// Capacity minus the reservations of `workloads`, as heartbeats report it; free disk is what
/// the filesystem reports (`disk_free`).
pub fn node_resources<'a>(
    capacity: &Capacity,
    disk_free: u64,
    workloads: impl IntoIterator<Item = &'a WorkloadSpec>,
) -> NodeResources {
    let reserved = workloads
        .into_iter()
        .fold(Resources::default(), |sum, w| sum.plus(&w.reserves()));
    NodeResources {
        total: capacity.total,
        free: Resources {
            disk_bytes: disk_free,
            ..capacity.total.minus(&reserved)
        },
        gpu_model: capacity.gpus.model.clone(),
    }
}

/// Free bytes of the filesystem holding `dir`.
pub fn disk_free(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use r1_protocol::messages::WorkloadId;

    use super::*;

    #[test]
    fn reads_memory_and_gpus() {
        assert_eq!(
            meminfo_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        let gpus = parse_nvidia_smi("NVIDIA L4, 0\nNVIDIA L4, 1\n", |path| match path {
            "/dev/nvidia0" => Some((195, 0)),
            "/dev/nvidia1" => Some((195, 1)),
            "/dev/nvidiactl" => Some((195, 255)),
            _ => None,
        });
        assert_eq!(gpus.model.as_deref(), Some("NVIDIA L4"));
        assert_eq!(gpus.count(), 2);
        assert_eq!(gpus.control.len(), 1);
        assert_eq!(parse_nvidia_smi("", |_| None), Gpus::default());
    }

    #[test]
    fn free_is_capacity_minus_reservations() {
        let capacity = Capacity {
            total: Resources {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
                disk_bytes: 100,
                gpu: 0,
            },
            gpus: Gpus::default(),
        };
        let w = WorkloadSpec {
            id: WorkloadId { job: 1, replica: 0 },
            revision: "r".into(),
            image: "i".into(),
            command: vec![],
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![],
            cpu_millis: 1500,
            memory_bytes: 1 << 29,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        };
        let r = node_resources(&capacity, 40, [&w, &w]);
        assert_eq!((r.free.cpu_millis, r.free.memory_bytes), (0, 0));
        let r = node_resources(&capacity, 40, [&w]);
        assert_eq!(
            (r.free.cpu_millis, r.free.memory_bytes, r.free.disk_bytes),
            (500, 1 << 29, 40)
        );
        assert_eq!(r.total, capacity.total);
    }
}
