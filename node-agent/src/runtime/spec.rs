//! The OCI runtime spec of a workload's container: the process from the image and the job,
//! CPU and memory limits for the cgroup, a private network namespace, GPU devices when the
//! workload asks for them, and its confinement: a user namespace, containerd's default seccomp
//! profile, `no-new-privileges`, a small capability set, a read-only root with a size-limited
//! `/tmp` and a scratch disk. Pure, so every field is tested without a container runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;

use r1_protocol::messages::WorkloadSpec;
use serde_json::{Value, json};

use super::seccomp;
use crate::oci::RunConfig;

/// CFS period used for CPU limits, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// Processes a workload may have at once, against fork bombs.
const PIDS_LIMIT: i64 = 4096;
/// `PATH` when the image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a workload's scratch disk is mounted in its container.
pub const SCRATCH_DIR: &str = "/scratch";

/// The capabilities a workload keeps (in its user namespace, they act only on what the
/// namespace owns): `CHOWN`, `DAC_OVERRIDE`, `FOWNER`, `FSETID` so root in the container can
/// manage its own files (package managers, entrypoints fixing permissions); `SETUID` and
/// `SETGID` so it can drop to an unprivileged user; `KILL` to signal its own processes of
/// other users; `NET_BIND_SERVICE` to listen on ports below 1024 in its network namespace.
/// Dropped from Docker's default set: `NET_RAW` (raw sockets, packet spoofing), `MKNOD`
/// (device nodes), `SETFCAP` (file capabilities), `SETPCAP`, `SYS_CHROOT` and `AUDIT_WRITE`.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETGID",
    "CAP_SETUID",
];

/// A range of host uids (and the same gids) that are a container's `0..size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// The host id of the container's root.
    pub host_base: u32,
    /// How many ids are mapped.
    pub size: u32,
}

impl IdMap {
    /// The host id of container id `id`; `None` when it is outside the range.
    pub fn to_host(self, id: u32) -> Option<u32> {
        (id < self.size).then(|| self.host_base.saturating_add(id))
    }
}

/// How a workload is confined, as the node's sandbox settings and the job decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The user namespace's id map; `None`: no user namespace (root is the host's root).
    pub id_map: Option<IdMap>,
    /// The root file system is writable (the job asked and the node allows it).
    pub writable_root: bool,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes: u64,
    /// Host directory mounted writable at [`SCRATCH_DIR`] (the workload's scratch disk).
    pub scratch: Option<PathBuf>,
}

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
    /// How the workload is confined.
    pub isolation: &'a Isolation,
}

/// Adds to `spec` a read-only bind mount of host file `source` at `destination`.
pub fn mount_read_only(spec: &mut Value, source: &std::path::Path, destination: &str) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.push(json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]
        }));
    }
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

/// The container's mounts: the usual pseudo file systems, `/tmp` of the isolation's size, and
/// the scratch disk when it has one.
fn mounts(isolation: &Isolation) -> Value {
    let mut mounts = json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [
            "nosuid", "nodev", "mode=1777", format!("size={}", isolation.tmp_bytes)
        ]}
    ]);
    if let (Some(scratch), Some(list)) = (&isolation.scratch, mounts.as_array_mut()) {
        list.push(json!({
            "destination": SCRATCH_DIR, "type": "bind", "source": scratch,
            "options": ["rbind", "rw", "nosuid", "nodev"]
        }));
    }
    mounts
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
    let isolation = input.isolation;
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "network"}),
    ];
    let mut linux = json!({
        "cgroupsPath": cgroup_path(input.namespace, input.container_id),
        "resources": {
            "devices": device_rules,
            "memory": {"limit": memory, "swap": memory},
            "cpu": {"shares": shares, "quota": quota, "period": CPU_PERIOD_US},
            "pids": {"limit": PIDS_LIMIT}
        },
        "devices": devices,
        "seccomp": seccomp::default_profile(),
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ]
    });
    if let Some(map) = isolation.id_map {
        namespaces.push(json!({"type": "user"}));
        let ids = json!([{"containerID": 0, "hostID": map.host_base, "size": map.size}]);
        linux["uidMappings"] = ids.clone();
        linux["gidMappings"] = ids;
    }
    linux["namespaces"] = json!(namespaces);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": CAPABILITIES, "effective": CAPABILITIES, "permitted": CAPABILITIES
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": !isolation.writable_root},
        "hostname": input.container_id,
        "mounts": mounts(isolation),
        "linux": linux
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

    fn isolated() -> Isolation {
        Isolation {
            id_map: Some(IdMap {
                host_base: 100_000,
                size: 65_536,
            }),
            writable_root: false,
            tmp_bytes: 64 << 20,
            scratch: Some(PathBuf::from("/var/lib/r1/scratch/r1-1-0")),
        }
    }

    fn spec_with(isolation: &Isolation) -> Value {
        runtime_spec(&SpecInput {
            container_id: "r1-1-0",
            namespace: "r1",
            workload: &workload(),
            image: &image(),
            devices: &[],
            secret_env: &BTreeMap::new(),
            node_env: &[],
            isolation,
        })
        .unwrap()
    }

    fn mount<'a>(spec: &'a Value, destination: &str) -> Option<&'a Value> {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == destination)
    }

    #[test]
    fn default_isolation_maps_root_away_and_confines_the_process() {
        let spec = spec_with(&isolated());
        let linux = &spec["linux"];
        assert!(
            linux["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "user"}))
        );
        let map = json!([{"containerID": 0, "hostID": 100_000, "size": 65_536}]);
        assert_eq!(linux["uidMappings"], map);
        assert_eq!(linux["gidMappings"], map);
        assert_eq!(linux["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let process = &spec["process"];
        assert_eq!(process["noNewPrivileges"], true);
        for set in ["bounding", "effective", "permitted"] {
            let caps = process["capabilities"][set].as_array().unwrap();
            assert!(caps.contains(&json!("CAP_NET_BIND_SERVICE")));
            for dropped in [
                "CAP_NET_RAW",
                "CAP_MKNOD",
                "CAP_SYS_ADMIN",
                "CAP_SYS_CHROOT",
            ] {
                assert!(!caps.contains(&json!(dropped)), "{dropped} in {set}");
            }
        }
        assert_eq!(spec["root"]["readonly"], true);
        let tmp = mount(&spec, "/tmp").unwrap();
        assert!(
            tmp["options"]
                .as_array()
                .unwrap()
                .contains(&json!("size=67108864"))
        );
        let scratch = mount(&spec, SCRATCH_DIR).unwrap();
        assert_eq!(scratch["source"], "/var/lib/r1/scratch/r1-1-0");
        assert_eq!(scratch["type"], "bind");
    }

    #[test]
    fn exec_processes_get_the_main_process_confinement() {
        let spec = spec_with(&isolated());
        let exec = super::super::exec::process_spec(&spec, &strings(&["sh"])).unwrap();
        for field in [
            "user",
            "capabilities",
            "noNewPrivileges",
            "rlimits",
            "env",
            "cwd",
        ] {
            assert_eq!(exec[field], spec["process"][field], "{field}");
        }
        assert_eq!(exec["args"], json!(["sh"]));
    }

    #[test]
    fn less_isolation_only_as_asked() {
        let spec = spec_with(&Isolation {
            id_map: None,
            writable_root: true,
            tmp_bytes: 1 << 20,
            scratch: None,
        });
        assert!(
            !spec["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "user"}))
        );
        assert!(spec["linux"].get("uidMappings").is_none());
        assert_eq!(spec["root"]["readonly"], false);
        assert!(mount(&spec, SCRATCH_DIR).is_none());
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    }

    #[test]
    fn id_map_shifts_only_ids_inside_the_range() {
        let map = IdMap {
            host_base: 100_000,
            size: 65_536,
        };
        assert_eq!(map.to_host(0), Some(100_000));
        assert_eq!(map.to_host(65_535), Some(165_535));
        assert_eq!(map.to_host(65_536), None);
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
            isolation: &isolated(),
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
