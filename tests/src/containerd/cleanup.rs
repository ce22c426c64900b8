//! Removing every trace of a private containerd: container processes, shims (and their sockets),
//! mounts under its dir, the cgroups of its namespace and runc's state for that namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::procfs::{self, ProcessInfo};
use crate::signal::{Signal, signal_process};
use crate::wait;

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// runc's state root as the runc shim uses it (`<root>/<namespace>/<container>`).
const RUNC_ROOT: &str = "/run/containerd/runc";
/// Where containerd 1.6 shims put their sockets (named by a hash, see [`shim_socket`]).
const SHIM_SOCKETS: &str = "/run/containerd/s";
/// How long processes and cgroups get to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(5);

/// Kills every container process, then every shim (or `ctr`) that talks to `socket`; a shim is
/// killed only once no container process is left below it, so no container escapes to init.
pub fn kill_containers(socket: &Path, namespace: &str) -> Vec<String> {
    let socket_text = socket.to_string_lossy().into_owned();
    thaw(namespace);
    let mut shims: Vec<ProcessInfo> = Vec::new();
    let gone = wait::until(GONE_TIMEOUT, || {
        let talkers = talkers(&socket_text);
        let pids: Vec<u32> = talkers.iter().map(|info| info.pid).collect();
        let containers = procfs::descendants(&pids);
        let victims = if containers.is_empty() {
            &pids
        } else {
            &containers
        };
        for pid in victims {
            let _ = signal_process(*pid, Signal::Kill);
        }
        shims.extend(talkers);
        pids.is_empty()
    });
    let mut problems = Vec::new();
    if !gone {
        let left: Vec<u32> = talkers(&socket_text).iter().map(|info| info.pid).collect();
        problems.push(format!("processes survive SIGKILL: {left:?}"));
    }
    for shim in &shims {
        if let Some(path) = shim_socket(&socket_text, shim)
            && let Err(error) = remove_file_if_present(&path)
        {
            problems.push(format!("removing shim socket {}: {error}", path.display()));
        }
    }
    problems
}

/// Live processes other than this one whose command line mentions `socket`.
fn talkers(socket: &str) -> Vec<ProcessInfo> {
    let me = std::process::id();
    procfs::processes()
        .into_iter()
        .filter(|info| info.pid != me && !info.is_zombie() && info.mentions(socket))
        .collect()
}

/// The socket of a runc shim, as containerd 1.6 names it:
/// `/run/containerd/s/<sha256 of "<grpc address>/<namespace>/<id>">`.
fn shim_socket(grpc_address: &str, shim: &ProcessInfo) -> Option<PathBuf> {
    let namespace = shim.flag_value("-namespace")?;
    let id = shim.flag_value("-id")?;
    let hash = Sha256::digest(format!("{grpc_address}/{namespace}/{id}").as_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    Some(Path::new(SHIM_SOCKETS).join(hex))
}

/// Thaws frozen (paused) containers of `namespace`: frozen processes cannot die.
fn thaw(namespace: &str) {
    let freezer = Path::new(CGROUP_ROOT).join("freezer").join(namespace);
    for dir in subdirs_deepest_first(&freezer) {
        let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    }
}

/// Lazily unmounts every mount point at or below `dir`, deepest first.
pub fn unmount_all(dir: &Path) -> Vec<String> {
    for _ in 0..3 {
        let mounts = procfs::mounts_under(dir);
        if mounts.is_empty() {
            return Vec::new();
        }
        for mount in mounts {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    procfs::mounts_under(dir)
        .into_iter()
        .map(|mount| format!("still mounted: {}", mount.display()))
        .collect()
}

/// Removes the `<namespace>` cgroup and everything below it in every hierarchy (v1 and v2).
pub fn remove_cgroups(namespace: &str) -> Vec<String> {
    let mut tops = vec![Path::new(CGROUP_ROOT).join(namespace)];
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        for entry in entries.filter_map(Result::ok) {
            // cgroup v1 links `cpu` to `cpu,cpuacct`; visit each hierarchy once.
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                tops.push(entry.path().join(namespace));
            }
        }
    }
    let mut problems = Vec::new();
    for top in tops.iter().filter(|top| top.is_dir()) {
        let removed = wait::until(GONE_TIMEOUT, || {
            for dir in subdirs_deepest_first(top) {
                let _ = std::fs::remove_dir(dir);
            }
            !top.exists()
        });
        if !removed {
            problems.push(format!("cgroup {} cannot be removed", top.display()));
        }
    }
    problems
}

/// Removes runc's state for `namespace` (the runc shim keeps it outside containerd's dirs).
pub fn remove_runc_state(namespace: &str) -> Vec<String> {
    let dir = Path::new(RUNC_ROOT).join(namespace);
    match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            vec![format!("removing {}: {error}", dir.display())]
        }
        _ => Vec::new(),
    }
}

/// `dir` and every directory below it, children before parents; empty when `dir` is absent.
fn subdirs_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                found.extend(subdirs_deepest_first(&entry.path()));
            }
        }
    }
    if dir.is_dir() {
        found.push(dir.to_owned());
    }
    found
}

/// Removes a file, treating "already gone" as success.
fn remove_file_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
