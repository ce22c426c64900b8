//! Image snapshots shifted into a user namespace. A workload's root is root only inside its
//! user namespace, so its root file system must belong to the mapped ids: the image's top
//! snapshot is copied once per id map into a committed snapshot whose every file is owned by
//! `host_base + id` (what containerd's own `WithRemappedSnapshot` does), and containers are
//! made on top of it. The copy is kept alive by a reference label on each container made from
//! it, so containerd collects it once the last such container is gone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, MountsRequest, PrepareSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::types::Mount;
use nix::mount::{MntFlags, MsFlags};
use tonic::Code;

use super::containerd::{Containerd, RuntimeError, SNAPSHOTTER};
use super::spec::IdMap;

/// Mode bits `chown` clears, put back after it.
const SET_ID_BITS: u32 = 0o6000;

/// Key of the committed snapshot holding `parent` shifted by `map`.
pub fn remapped_key(parent: &str, map: IdMap) -> String {
    format!("{parent}-r1-idmap-{}-{}", map.host_base, map.size)
}

/// Container labels that keep `keys` (snapshots a container needs besides its own) from
/// containerd's garbage collection for as long as the container exists.
pub fn keep_labels(keys: &[String]) -> Vec<(String, String)> {
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            (
                format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}/r1-{i}"),
                key.clone(),
            )
        })
        .collect()
}

/// Gives every file under `root` (not following symlinks) the owner and group `map` gives its
/// current ones; ids outside the map become the map's root. Returns how many entries changed.
pub fn shift_tree(root: &Path, map: IdMap) -> std::io::Result<u64> {
    let mut changed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        let uid = map.to_host(meta.uid()).unwrap_or(map.host_base);
        let gid = map.to_host(meta.gid()).unwrap_or(map.host_base);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        let mode = meta.mode();
        if !meta.file_type().is_symlink() && mode & SET_ID_BITS != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
        }
        changed += 1;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(changed)
}

/// Mounts a snapshot's `mounts` (one overlay or bind mount) at `target`.
fn mount_snapshot(mounts: &[Mount], target: &Path) -> std::io::Result<()> {
    let [mount] = mounts else {
        return Err(std::io::Error::other(format!(
            "expected one mount for a snapshot, got {}",
            mounts.len()
        )));
    };
    let bind = mount.r#type == "bind" || mount.options.iter().any(|o| o == "bind" || o == "rbind");
    let (kind, flags, data) = if bind {
        (None, MsFlags::MS_BIND, None)
    } else {
        let data: Vec<&str> = mount
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| *o != "rw")
            .collect();
        (
            Some(mount.r#type.as_str()),
            MsFlags::empty(),
            Some(data.join(",")),
        )
    };
    nix::mount::mount(
        Some(mount.source.as_str()),
        target,
        kind,
        flags,
        data.as_deref(),
    )
    .map_err(std::io::Error::from)
}

/// Mounts `mounts` on a fresh directory, shifts the tree by `map`, unmounts.
fn shift_snapshot(mounts: &[Mount], map: IdMap) -> std::io::Result<u64> {
    let dir = std::env::temp_dir().join(format!(
        "r1-idmap-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir(&dir)?;
    let shifted = mount_snapshot(mounts, &dir).and_then(|()| {
        let shifted = shift_tree(&dir, map);
        let unmounted =
            nix::mount::umount2(&dir, MntFlags::MNT_DETACH).map_err(std::io::Error::from);
        shifted.and_then(|n| unmounted.map(|()| n))
    });
    let removed = std::fs::remove_dir(&dir);
    let shifted = shifted?;
    removed?;
    Ok(shifted)
}

impl Containerd {
    /// The committed snapshot of `parent` shifted by `map`, made now unless it exists; `prep`
    /// names the scratch snapshot used while making it (kept alive by the caller's container).
    pub async fn remapped_snapshot(
        &self,
        parent: &str,
        map: IdMap,
        prep: &str,
    ) -> Result<String, RuntimeError> {
        let key = remapped_key(parent, map);
        let exists = self
            .client
            .snapshots()
            .stat(self.request(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: key.clone(),
            }))
            .await;
        match exists {
            Ok(_) => return Ok(key),
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return Err(RuntimeError::rpc("stat snapshot")(status)),
        }
        self.remove_snapshot(prep).await?;
        self.client
            .snapshots()
            .prepare(self.request(PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: prep.to_owned(),
                parent: parent.to_owned(),
                labels: Default::default(),
            }))
            .await
            .map_err(RuntimeError::rpc("prepare snapshot to shift"))?;
        let mounts = self
            .client
            .snapshots()
            .mounts(self.request(MountsRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: prep.to_owned(),
            }))
            .await
            .map_err(RuntimeError::rpc("snapshot mounts"))?
            .into_inner()
            .mounts;
        let started = std::time::Instant::now();
        let shifted = tokio::task::spawn_blocking(move || shift_snapshot(&mounts, map))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|e| RuntimeError::Remap {
                parent: parent.to_owned(),
                reason: e.to_string(),
            });
        let entries = match shifted {
            Ok(entries) => entries,
            Err(e) => {
                self.remove_snapshot(prep).await?;
                return Err(e);
            }
        };
        tracing::info!(
            parent,
            entries,
            ms = started.elapsed().as_millis(),
            "image snapshot shifted into the user namespace's ids"
        );
        let committed = self
            .client
            .snapshots()
            .commit(self.request(CommitSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                name: key.clone(),
                key: prep.to_owned(),
                labels: Default::default(),
            }))
            .await;
        match committed {
            Ok(_) => Ok(key),
            Err(status) if status.code() == Code::AlreadyExists => {
                self.remove_snapshot(prep).await?;
                Ok(key)
            }
            Err(status) => Err(RuntimeError::rpc("commit shifted snapshot")(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_labels_name_the_map_and_the_snapshotter() {
        let map = IdMap {
            host_base: 100_000,
            size: 65_536,
        };
        assert_eq!(
            remapped_key("sha256:ab", map),
            "sha256:ab-r1-idmap-100000-65536"
        );
        let labels = keep_labels(&["a".into(), "b".into()]);
        assert_eq!(
            labels,
            vec![
                (
                    "containerd.io/gc.ref.snapshot.overlayfs/r1-0".into(),
                    "a".into()
                ),
                (
                    "containerd.io/gc.ref.snapshot.overlayfs/r1-1".into(),
                    "b".into()
                ),
            ]
        );
    }

    #[test]
    fn a_tree_is_shifted_and_keeps_its_set_id_bits() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("su");
        std::fs::write(&file, b"x").unwrap();
        std::os::unix::fs::symlink("su", dir.path().join("link")).unwrap();
        std::os::unix::fs::lchown(&file, Some(0), Some(5)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let map = IdMap {
            host_base: 200_000,
            size: 65_536,
        };
        assert_eq!(shift_tree(dir.path(), map).unwrap(), 3);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (200_000, 200_005));
        assert_eq!(meta.mode() & 0o7777, 0o4755);
        let link = std::fs::symlink_metadata(dir.path().join("link")).unwrap();
        assert_eq!(link.uid(), 200_000);
    }
}
