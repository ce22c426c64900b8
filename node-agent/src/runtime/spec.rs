//! The OCI runtime spec of a workload's container: the process from the image and the job,
//! CPU and memory limits for the cgroup, a private network namespace, GPU devices when the
//! workload asks for them. Pure, so every field is tested without a container runtime.

use std::collections::BTreeMap;

use r1_protocol::messages::WorkloadSpec;
use serde_json::{Value, json};

use crate::oci::RunConfig;

/// CFS period used for CPU limits, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// Processes a workload may have at once, against fork bombs.
const PIDS_LIMIT: i64 = 4096;
/// `PATH` when the image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A character device passed into the container (a GPU and its control devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path on the host and in the container.
    pub path: String,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
}

/// Why a spec cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Neither the job nor the image says what to run.
    #[error("nothing to run: the job gives no command and the image has no entrypoint or cmd")]
    NoProcess,
}

/// Everything the spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// Container id (also the hostname).
    pub container_id: &'a str,
    /// containerd namespace, part of the cgroup path.
    pub namespace: &'a str,
    /// The workload.
    pub workload: &'a WorkloadSpec,
    /// The image's defaults.
    pub image: &'a RunConfig,
    /// Devices to pass through (empty unless the workload has GPUs).
    pub devices: &'a [Device],
    /// The job's secret values, opened from the workload's sealed secrets, over its plain env.
    pub secret_env: &'a BTreeMap<String, String>,
    /// Variables the node sets for every workload (`R1FS_API_URL`), over the job's own.
    pub node_env: &'a [(String, String)],
}

/// The cgroup of a container, relative to each hierarchy's root.
pub fn cgroup_path(namespace: &str, container_id: &str) -> String {
    format!("/{namespace}/{container_id}")
}

/// The process arguments: the job's command replaces the image's entrypoint (and drops its
/// cmd, as Kubernetes does); the job's args replace the image's cmd.
pub fn process_args(workload: &WorkloadSpec, image: &RunConfig) -> Result<Vec<String>, SpecError> {
    let entrypoint = if workload.command.is_empty() {
        image.entrypoint.clone().unwrap_or_default()
    } else {
        workload.command.clone()
    };
    let args = if !workload.args.is_empty() {
        workload.args.clone()
    } else if workload.command.is_empty() {
        image.cmd.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(args).collect();
    if all.is_empty() {
        return Err(SpecError::NoProcess);
    }
    Ok(all)
}

/// The environment: the image's, then the job's on top, then its secret values, then the
/// node's (same name wins), `PATH` defaulted.
pub fn process_env(
    workload: &WorkloadSpec,
    image: &RunConfig,
    secret_env: &BTreeMap<String, String>,
    node_env: &[(String, String)],
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for pair in image.env.iter().flatten() {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if env.insert(name.to_owned(), value.to_owned()).is_none() {
            order.push(name.to_owned());
        }
    }
    if !env.contains_key("PATH") {
        let (name, value) = DEFAULT_PATH.split_once('=').unwrap_or(("PATH", ""));
        env.insert(name.into(), value.into());
        order.insert(0, name.into());
    }
    for (name, value) in workload
        .env
        .iter()
        .chain(secret_env)
        .chain(node_env.iter().map(|(n, v)| (n, v)))
    {
        if env.insert(name.clone(), value.clone()).is_none() {
            order.push(name.clone());
        }
    }
    order
        .into_iter()
        .map(|name| format!("{name}={}", env[&name]))
        .collect()
}

/// The complete OCI runtime spec.
pub fn runtime_spec(input: &SpecInput<'_>) -> Result<Value, SpecError> {
    let workload = input.workload;
    let args = process_args(workload, input.image)?;
    let env = process_env(workload, input.image, input.secret_env, input.node_env);
    let cwd = input
        .image
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".into());
    let capabilities = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    let mut device_rules = vec![json!({"allow": false, "access": "rwm"})];
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        device_rules.push(
            json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
        );
    }
    device_rules.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
    let mut devices = Vec::new();
    for device in input.devices {
        devices.push(json!({
            "path": device.path, "type": "c", "major": device.major, "minor": device.minor,
            "fileMode": 0o666, "uid": 0, "gid": 0
        }));
        device_rules.push(json!({
            "allow": true, "type": "c", "major": device.major, "minor": device.minor, "access": "rwm"
        }));
    }
    let quota = i64::try_from(workload.cpu_millis.saturating_mul(CPU_PERIOD_US) / 1000)
        .unwrap_or(i64::MAX)
        .max(1000);
    let shares = (workload.cpu_millis.saturating_mul(1024) / 1000).max(2);
    let memory = i64::try_from(workload.memory_bytes).unwrap_or(i64::MAX);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": capabilities, "effective": capabilities, "permitted": capabilities
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": input.container_id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
        ],
        "linux": {
            "cgroupsPath": cgroup_path(input.namespace, input.container_id),
            "resources": {
                "devices": device_rules,
                "memory": {"limit": memory, "swap": memory},
                "cpu": {"shares": shares, "quota": quota, "period": CPU_PERIOD_US},
                "pids": {"limit": PIDS_LIMIT}
            },
            "devices": devices,
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    }))
}

#[cfg(test)]
mod tests {
    use r1_protocol::messages::WorkloadId;

    use super::*;

    fn workload() -> WorkloadSpec {
        WorkloadSpec {
            id: WorkloadId { job: 1, replica: 0 },
            revision: "r".into(),
            image: "localhost/x:1".into(),
            command: vec![],
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![],
            cpu_millis: 250,
            memory_bytes: 128 << 20,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        }
    }

    fn image() -> RunConfig {
        RunConfig {
            env: Some(vec!["PATH=/bin".into(), "MODE=image".into()]),
            entrypoint: Some(vec!["/bin/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            working_dir: Some("/srv".into()),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let mut w = workload();
        assert_eq!(
            process_args(&w, &image()).unwrap(),
            strings(&["/bin/entry", "serve"])
        );
        w.args = strings(&["--fast"]);
        assert_eq!(
            process_args(&w, &image()).unwrap(),
            strings(&["/bin/entry", "--fast"])
        );
        w.command = strings(&["httpd", "-f"]);
        w.args.clear();
        assert_eq!(
            process_args(&w, &image()).unwrap(),
            strings(&["httpd", "-f"])
        );
        w.args = strings(&["-p", "80"]);
        assert_eq!(
            process_args(&w, &image()).unwrap(),
            strings(&["httpd", "-f", "-p", "80"])
        );
        assert_eq!(
            process_args(&workload(), &RunConfig::default()),
            Err(SpecError::NoProcess)
        );
    }

    #[test]
    fn job_env_overrides_image_env_and_path_is_defaulted() {
        let mut w = workload();
        w.env.insert("MODE".into(), "job".into());
        w.env.insert("EXTRA".into(), "1".into());
        let none = BTreeMap::new();
        assert_eq!(
            process_env(&w, &image(), &none, &[]),
            strings(&["PATH=/bin", "MODE=job", "EXTRA=1"])
        );
        let env = process_env(&workload(), &RunConfig::default(), &none, &[]);
        assert_eq!(env, strings(&[DEFAULT_PATH]));
        let secret = BTreeMap::from([
            ("EXTRA".to_owned(), "secret".to_owned()),
            ("TOKEN".to_owned(), "t".to_owned()),
        ]);
        assert_eq!(
            process_env(&w, &image(), &secret, &[]),
            strings(&["PATH=/bin", "MODE=job", "EXTRA=secret", "TOKEN=t"]),
            "secret values join the job's"
        );
        let node = [("MODE".to_owned(), "node".to_owned())];
        assert_eq!(
            process_env(&w, &image(), &none, &node),
            strings(&["PATH=/bin", "MODE=node", "EXTRA=1"]),
            "the node's variables win"
        );
    }

    #[test]
    fn limits_devices_and_cgroup_are_set() {
        let mut w = workload();
        w.gpu = 1;
        let devices = [Device {
            path: "/dev/nvidia0".into(),
            major: 195,
            minor: 0,
        }];
        let spec = runtime_spec(&SpecInput {
            container_id: "r1-1-0",
            namespace: "r1",
            workload: &w,
            image: &image(),
            devices: &devices,
            secret_env: &BTreeMap::new(),
            node_env: &[],
        })
        .unwrap();
        let resources = &spec["linux"]["resources"];
        assert_eq!(resources["memory"]["limit"], 128 << 20);
        assert_eq!(resources["cpu"]["quota"], 25_000);
        assert_eq!(resources["cpu"]["period"], 100_000);
        assert_eq!(resources["cpu"]["shares"], 256);
        assert_eq!(spec["linux"]["cgroupsPath"], "/r1/r1-1-0");
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/nvidia0");
        assert!(
            resources["devices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|rule| rule["major"] == 195 && rule["allow"] == true)
        );
        assert_eq!(spec["process"]["cwd"], "/srv");
        let namespaces: Vec<_> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(namespaces.contains(&"network"));
    }
}
