//! OCI image archives built from Debian's static busybox, so tests run real containers without
//! a registry or network: `ctr images import` (or the agent) loads the archive.
//!
//! Archives are deterministic: the same inputs give the same bytes and digests (fixed times and
//! owners, entries sorted).

mod canned;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

pub use canned::{exits_with, httpd, memory_hog, shop, sleeper};

/// Where the busybox binary copied into every image comes from (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Modification time of every archive entry (2024-01-01T00:00:00Z), for reproducible digests.
const MTIME: u64 = 1_704_067_200;

/// Media types of the OCI image specification.
mod media {
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
}

/// Why an image archive could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The busybox binary is missing (install `busybox-static`).
    #[error("cannot read {path} (is busybox-static installed?): {source}")]
    Busybox {
        /// Where busybox was expected.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A path inside the image is unusable.
    #[error("bad path in image: {0:?}")]
    BadPath(String),
    /// Assembling a tar stream failed.
    #[error("cannot build tar stream: {0}")]
    Tar(#[from] std::io::Error),
    /// A host program or one of its libraries cannot be read.
    #[error("cannot copy host program {path}: {reason}")]
    HostProgram {
        /// The program.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The archive could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The archive path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What identifies an image written by [`OciImageBuilder::write_archive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image reference the archive is tagged with (e.g. `r1.test/httpd:1`).
    pub reference: String,
    /// `sha256:…` of the manifest: the digest containerd shows for the image.
    pub manifest_digest: String,
    /// `sha256:…` of the image config: the image id.
    pub config_digest: String,
    /// `sha256:…` of the single (uncompressed) layer.
    pub layer_diff_id: String,
}

/// One entry of the image's file system.
#[derive(Debug, Clone)]
enum Entry {
    Dir { mode: u32 },
    File { bytes: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// Builds a single-layer OCI image with busybox at `/bin/busybox` plus chosen applets and files.
#[derive(Debug, Clone)]
pub struct OciImageBuilder {
    reference: String,
    entries: BTreeMap<String, Entry>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: String,
}

impl OciImageBuilder {
    /// An image tagged `reference` holding busybox, `/etc/passwd` with root, `/tmp` and a PATH.
    pub fn new(reference: &str) -> Self {
        let mut entries = BTreeMap::new();
        for (dir, mode) in [
            ("bin", 0o755),
            ("etc", 0o755),
            ("root", 0o700),
            ("tmp", 0o1777),
        ] {
            entries.insert(dir.to_owned(), Entry::Dir { mode });
        }
        let passwd = b"root:x:0:0:root:/root:/bin/sh\n".to_vec();
        entries.insert(
            "etc/passwd".to_owned(),
            Entry::File {
                bytes: passwd,
                mode: 0o644,
            },
        );
        let group = b"root:x:0:\n".to_vec();
        entries.insert(
            "etc/group".to_owned(),
            Entry::File {
                bytes: group,
                mode: 0o644,
            },
        );
        Self {
            reference: reference.to_owned(),
            entries,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: None,
            entrypoint: None,
            working_dir: "/".to_owned(),
        }
    }

    /// The reference the image will be tagged with.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Adds (or replaces) a regular file, e.g. `("/www/index.html", b"hi", 0o644)`.
    pub fn file(mut self, path_in_image: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        let entry = Entry::File {
            bytes: bytes.into(),
            mode,
        };
        self.entries.insert(normalise(path_in_image), entry);
        self
    }

    /// Adds a dynamically linked program of this host (e.g. `/usr/bin/redis-cli`) at the same
    /// path, with every shared library `ldd` lists for it, so an unmodified Debian tool runs
    /// inside the image.
    pub fn host_program(mut self, path: &str) -> Result<Self, ImageError> {
        let failed = |reason: String| ImageError::HostProgram {
            path: path.to_owned(),
            reason,
        };
        let ldd = std::process::Command::new("ldd")
            .arg(path)
            .output()
            .map_err(|e| failed(format!("ldd: {e}")))?;
        if !ldd.status.success() {
            return Err(failed(String::from_utf8_lossy(&ldd.stderr).into_owned()));
        }
        let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter_map(|line| {
                let path = line.split("=>").last()?.split_whitespace().next()?;
                path.starts_with('/').then(|| path.to_owned())
            })
            .collect();
        for file in std::iter::once(path.to_owned()).chain(libraries) {
            let bytes = std::fs::read(&file).map_err(|e| failed(format!("{file}: {e}")))?;
            self = self.file(&file, bytes, 0o755);
        }
        Ok(self)
    }

    /// Adds an empty directory.
    pub fn dir(mut self, path_in_image: &str, mode: u32) -> Self {
        self.entries
            .insert(normalise(path_in_image), Entry::Dir { mode });
        self
    }

    /// Adds `/bin/<name>` → `busybox` symlinks, so the image can run `sh`, `httpd`, ….
    pub fn applets(mut self, names: &[&str]) -> Self {
        for name in names {
            let target = "busybox".to_owned();
            self.entries
                .insert(format!("bin/{name}"), Entry::Symlink { target });
        }
        self
    }

    /// Sets environment variable `key` to `value` in the image config.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        let prefix = format!("{key}=");
        self.env.retain(|pair| !pair.starts_with(&prefix));
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Sets the default command (the arguments after the entrypoint, if any).
    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = Some(args.iter().map(|arg| (*arg).to_owned()).collect());
        self
    }

    /// Sets the entrypoint.
    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = Some(args.iter().map(|arg| (*arg).to_owned()).collect());
        self
    }

    /// Sets the working directory of the image's processes.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = dir.to_owned();
        self
    }

    /// Writes the image as an OCI layout tar (what `ctr images import` takes) to `path`.
    pub fn write_archive(&self, path: &Path) -> Result<ImageInfo, ImageError> {
        let (archive, info) = self.archive()?;
        std::fs::write(path, archive).map_err(|source| ImageError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(info)
    }

    /// The OCI layout tar in memory, and what identifies the image.
    pub fn archive(&self) -> Result<(Vec<u8>, ImageInfo), ImageError> {
        let layer = self.layer()?;
        let layer_digest = digest(&layer);
        let config =
            serde_json::to_vec(&self.config(&layer_digest)).map_err(std::io::Error::from)?;
        let config_digest = digest(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": { "mediaType": media::CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": media::LAYER, "digest": layer_digest, "size": layer.len() }],
        }))
        .map_err(std::io::Error::from)?;
        let manifest_digest = digest(&manifest);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::INDEX,
            "manifests": [{
                "mediaType": media::MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {
                    "io.containerd.image.name": self.reference,
                    "org.opencontainers.image.ref.name": self.reference,
                },
            }],
        }))
        .map_err(std::io::Error::from)?;

        let mut outer = Tar::default();
        outer.dir("blobs", 0o755)?;
        outer.dir("blobs/sha256", 0o755)?;
        let mut blobs = [
            (&config_digest, &config),
            (&layer_digest, &layer),
            (&manifest_digest, &manifest),
        ];
        blobs.sort();
        for (blob_digest, bytes) in blobs {
            let name = format!("blobs/sha256/{}", blob_digest.trim_start_matches("sha256:"));
            outer.file(&name, bytes, 0o644)?;
        }
        outer.file("index.json", &index, 0o644)?;
        outer.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)?;
        let info = ImageInfo {
            reference: self.reference.clone(),
            manifest_digest,
            config_digest,
            layer_diff_id: layer_digest,
        };
        Ok((outer.finish()?, info))
    }

    /// The image config (what containerd reads for env, command and layers).
    fn config(&self, layer_digest: &str) -> serde_json::Value {
        let mut config = json!({ "Env": self.env, "WorkingDir": self.working_dir });
        if let Some(cmd) = &self.cmd {
            config["Cmd"] = json!(cmd);
        }
        if let Some(entrypoint) = &self.entrypoint {
            config["Entrypoint"] = json!(entrypoint);
        }
        json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": architecture(),
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
            "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "r1-e2e OciImageBuilder" }],
        })
    }

    /// The single layer: busybox, parents of every entry, then the entries, sorted.
    fn layer(&self) -> Result<Vec<u8>, ImageError> {
        let busybox = std::fs::read(BUSYBOX).map_err(|source| ImageError::Busybox {
            path: PathBuf::from(BUSYBOX),
            source,
        })?;
        let mut entries = self.entries.clone();
        entries
            .entry("bin/busybox".to_owned())
            .or_insert(Entry::File {
                bytes: busybox,
                mode: 0o755,
            });
        let parents: Vec<String> = entries.keys().flat_map(|path| parents(path)).collect();
        for parent in parents {
            entries.entry(parent).or_insert(Entry::Dir { mode: 0o755 });
        }
        let mut layer = Tar::default();
        for (path, entry) in &entries {
            if path.is_empty() || path.split('/').any(|part| part.is_empty() || part == "..") {
                return Err(ImageError::BadPath(path.clone()));
            }
            match entry {
                Entry::Dir { mode } => layer.dir(path, *mode)?,
                Entry::File { bytes, mode } => layer.file(path, bytes, *mode)?,
                Entry::Symlink { target } => layer.symlink(path, target)?,
            }
        }
        Ok(layer.finish()?)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// The OCI name of this machine's architecture.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A path inside the image without leading or trailing slashes.
fn normalise(path: &str) -> String {
    path.trim_matches('/').to_owned()
}

/// Every proper ancestor of `path` (`a/b/c` → `a`, `a/b`).
fn parents(path: &str) -> Vec<String> {
    path.match_indices('/')
        .map(|(index, _)| path[..index].to_owned())
        .collect()
}

/// A tar stream with fixed owners and times, so identical inputs give identical bytes.
struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl Tar {
    /// A header with everything fixed but the type, mode and size.
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header
    }

    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        let mut header = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut header, format!("{path}/"), std::io::empty())
    }

    fn file(&mut self, path: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        let mut header = Self::header(tar::EntryType::Regular, mode, bytes.len() as u64);
        self.builder.append_data(&mut header, path, bytes)
    }

    fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut header, path, target)
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        self.builder.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OciImageBuilder {
        OciImageBuilder::new("r1.test/sample:1")
            .applets(&["sh", "echo"])
            .file("/srv/deep/data.txt", b"data".to_vec(), 0o600)
            .env("GREETING", "hi")
            .cmd(&["sh", "-c", "echo $GREETING"])
    }

    #[test]
    fn same_inputs_give_same_digests() {
        let (first_bytes, first) = sample().archive().expect("archive");
        let (second_bytes, second) = sample().archive().expect("archive");
        assert_eq!(first, second);
        assert_eq!(first_bytes, second_bytes);
        let (_, other) = sample().env("GREETING", "ho").archive().expect("archive");
        assert_ne!(first.config_digest, other.config_digest);
        assert_eq!(first.layer_diff_id, other.layer_diff_id);
    }

    #[test]
    fn layer_holds_busybox_applets_and_parent_dirs() {
        let layer = sample().layer().expect("layer");
        let mut archive = tar::Archive::new(layer.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|entry| {
                entry
                    .expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        for wanted in [
            "bin/",
            "bin/busybox",
            "bin/sh",
            "srv/",
            "srv/deep/",
            "srv/deep/data.txt",
        ] {
            assert!(
                paths.iter().any(|path| path == wanted),
                "{wanted} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn parents_of_nested_path() {
        assert_eq!(parents("a/b/c"), vec!["a".to_owned(), "a/b".to_owned()]);
        assert!(parents("a").is_empty());
    }
}
