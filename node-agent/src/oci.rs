//! The parts of the OCI image format the agent reads: index, manifest and image config, and the
//! chain ids that name a stack of unpacked layers in containerd's snapshotter.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Media types of manifests the agent can run.
pub const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Media types of image indexes (multi-platform lists).
pub const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Why an image cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciError {
    /// A JSON document of the image does not parse.
    #[error("{what} does not parse: {reason}")]
    Parse {
        /// Which document.
        what: &'static str,
        /// Parser error.
        reason: String,
    },
    /// The index lists no manifest for this node's platform.
    #[error("image has no manifest for {os}/{architecture}")]
    NoPlatform {
        /// Operating system.
        os: String,
        /// CPU architecture.
        architecture: String,
    },
    /// A descriptor names a media type the agent cannot run.
    #[error("unsupported media type {0}")]
    MediaType(String),
    /// The config lists a different number of layers than the manifest.
    #[error("manifest has {layers} layers but the config lists {diff_ids} diff ids")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// Diff ids in the config.
        diff_ids: usize,
    },
}

/// A pointer to a blob: what it is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Platform, in index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations (the image name in an OCI layout's index).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// OS and architecture of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
}

/// An image index.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// Its entries.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The image config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// The parts of the image config the agent uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// How to run the image.
    #[serde(default)]
    pub config: RunConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// Defaults for the container process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `NAME=value` pairs.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// Uncompressed layer digests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// `sha256:<hex>` per layer, bottom first.
    pub diff_ids: Vec<String>,
}

fn parse<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::Parse {
        what,
        reason: e.to_string(),
    })
}

/// Reads an index.
pub fn parse_index(bytes: &[u8]) -> Result<Index, OciError> {
    parse("image index", bytes)
}

/// Reads a manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, OciError> {
    parse("image manifest", bytes)
}

/// Reads an image config and checks it against the manifest's layers.
pub fn parse_config(bytes: &[u8], manifest: &Manifest) -> Result<ImageConfig, OciError> {
    let config: ImageConfig = parse("image config", bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(OciError::LayerCount {
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    Ok(config)
}

/// The platform this agent runs on, in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
    }
}

/// The index entry for `platform`; entries without a platform match any.
pub fn select_manifest<'a>(
    index: &'a Index,
    platform: &Platform,
) -> Result<&'a Descriptor, OciError> {
    index
        .manifests
        .iter()
        .filter(|d| MANIFEST_TYPES.contains(&d.media_type.as_str()))
        .find(|d| {
            d.platform
                .as_ref()
                .is_none_or(|p| p.os == platform.os && p.architecture == platform.architecture)
        })
        .ok_or_else(|| OciError::NoPlatform {
            os: platform.os.clone(),
            architecture: platform.architecture.clone(),
        })
}

/// Chain ids of a layer stack: the first is the first diff id; each next one is
/// `sha256(previous + " " + diff id)`. containerd names committed snapshots by them.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let digest = Sha256::digest(format!("{parent} {diff_id}").as_bytes());
                format!("sha256:{}", r1_protocol::hex::encode_bare(&digest))
            }
        };
        out.push(next);
    }
    out
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        r1_protocol::hex::encode_bare(&Sha256::digest(bytes))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], digest_of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn picks_the_host_platform_from_an_index() {
        let index = parse_index(
            br#"{"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1","size":1,
               "platform":{"os":"linux","architecture":"riscv"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2","size":1,
               "platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        let amd64 = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
        };
        assert_eq!(select_manifest(&index, &amd64).unwrap().digest, "sha256:2");
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
        };
        assert!(matches!(
            select_manifest(&index, &arm),
            Err(OciError::NoPlatform { .. })
        ));
    }

    #[test]
    fn config_must_match_the_layers() {
        let manifest = parse_manifest(
            br#"{"config":{"mediaType":"x","digest":"sha256:c","size":2},
                 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:l","size":3}]}"#,
        )
        .unwrap();
        let good = br#"{"config":{"Cmd":["sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:l"]}}"#;
        let config = parse_config(good, &manifest).unwrap();
        assert_eq!(config.config.cmd, Some(vec!["sh".to_string()]));
        let bad = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            parse_config(bad, &manifest).unwrap_err(),
            OciError::LayerCount {
                layers: 1,
                diff_ids: 0
            }
        );
    }
}
