//! Each workload's scratch disk: a file system of its own, an ext4 image of the node's
//! `sandbox.scratchBytes` on a loop device, mounted under `<dataDir>/scratch/<container>` and
//! bound at `/scratch` in the container. A workload that fills it gets `ENOSPC`; the node's
//! own disk never holds more than the image file. The disk lives as long as the container
//! (restarts keep it) and is deleted with it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::MntFlags;
use tokio::process::Command;

/// Why a scratch disk cannot be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// A file operation failed.
    #[error("scratch disk {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `mkfs.ext4` or `mount` failed.
    #[error("scratch disk: {command} failed: {output}")]
    Command {
        /// The command run.
        command: String,
        /// What it said.
        output: String,
    },
}

/// The node's scratch disks.
#[derive(Debug, Clone)]
pub struct ScratchDisks {
    dir: PathBuf,
    bytes: u64,
}

impl ScratchDisks {
    /// Disks of `bytes` each under `dir`; none at all when `bytes` is 0.
    pub fn new(dir: PathBuf, bytes: u64) -> Self {
        Self { dir, bytes }
    }

    /// Where `container`'s disk is mounted on the host.
    fn mount_point(&self, container: &str) -> PathBuf {
        self.dir.join(container)
    }

    /// `container`'s disk image.
    fn image(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.ext4"))
    }

    /// Makes and mounts `container`'s disk unless it is mounted already (its root directory
    /// owned by `owner`, the container's root on the host). `None` when disks are off.
    pub async fn ensure(
        &self,
        container: &str,
        owner: u32,
    ) -> Result<Option<PathBuf>, ScratchError> {
        if self.bytes == 0 {
            return Ok(None);
        }
        let target = self.mount_point(container);
        create_dir(&target)?;
        if is_mount_point(&target)? {
            return Ok(Some(target));
        }
        let image = self.image(container);
        if !image.exists() {
            let file = std::fs::File::create(&image).map_err(io(&image))?;
            file.set_len(self.bytes).map_err(io(&image))?;
            let root_owner = format!("root_owner={owner}:{owner}");
            let made = run(Command::new("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-O",
                    "^has_journal",
                    "-E",
                    &root_owner,
                ])
                .arg(&image))
            .await;
            if let Err(e) = made {
                let _ = std::fs::remove_file(&image);
                return Err(e);
            }
        }
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
            .arg(&image)
            .arg(&target))
        .await?;
        Ok(Some(target))
    }

    /// The containers that have a disk (or what is left of one).
    pub fn containers(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .map(|name| {
                name.strip_suffix(".ext4")
                    .map_or(name.clone(), str::to_owned)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Unmounts and deletes `container`'s disk; nothing to do when it has none.
    pub fn remove(&self, container: &str) -> Result<(), ScratchError> {
        let target = self.mount_point(container);
        if target.exists() {
            if is_mount_point(&target)? {
                nix::mount::umount2(&target, MntFlags::MNT_DETACH)
                    .map_err(|e| io(&target)(e.into()))?;
            }
            std::fs::remove_dir(&target).map_err(io(&target))?;
        }
        let image = self.image(container);
        match std::fs::remove_file(&image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&image)(e)),
            _ => Ok(()),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScratchError + '_ {
    move |source| ScratchError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create_dir(path: &Path) -> Result<(), ScratchError> {
    std::fs::create_dir_all(path).map_err(io(path))
}

/// Whether something is mounted on `path` (it is on another device than its parent).
fn is_mount_point(path: &Path) -> Result<bool, ScratchError> {
    let parent = path.parent().unwrap_or(path);
    let here = std::fs::metadata(path).map_err(io(path))?;
    let above = std::fs::metadata(parent).map_err(io(parent))?;
    Ok(here.dev() != above.dev())
}

async fn run(command: &mut Command) -> Result<(), ScratchError> {
    let name = format!("{:?}", command.as_std());
    let output = command
        .output()
        .await
        .map_err(|source| ScratchError::Command {
            command: name.clone(),
            output: source.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(ScratchError::Command {
        command: name,
        output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_disk_when_off() {
        let dir = tempfile::tempdir().unwrap();
        let disks = ScratchDisks::new(dir.path().to_owned(), 0);
        assert!(disks.ensure("c", 0).await.unwrap().is_none());
        disks.remove("c").unwrap();
    }

    #[tokio::test]
    async fn a_disk_is_made_mounted_kept_and_removed() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let disks = ScratchDisks::new(dir.path().to_owned(), 16 << 20);
        let mounted = disks.ensure("c", 100_000).await.unwrap().unwrap();
        assert!(is_mount_point(&mounted).unwrap());
        assert_eq!(std::fs::metadata(&mounted).unwrap().uid(), 100_000);
        std::fs::write(mounted.join("kept"), b"x").unwrap();
        assert_eq!(
            disks.ensure("c", 100_000).await.unwrap(),
            Some(mounted.clone())
        );
        assert!(mounted.join("kept").exists());
        assert_eq!(disks.containers(), vec!["c".to_owned()]);
        // After a reboot of the host the disk is mounted again, with what it held.
        nix::mount::umount2(&mounted, MntFlags::MNT_DETACH).unwrap();
        assert!(!is_mount_point(&mounted).unwrap());
        disks.ensure("c", 100_000).await.unwrap();
        assert!(mounted.join("kept").exists());
        disks.remove("c").unwrap();
        assert!(disks.containers().is_empty());
        assert!(!mounted.exists());
        assert!(!disks.image("c").exists());
    }
}
