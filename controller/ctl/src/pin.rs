//! `r1ctl apply` pins each DeeployJob's image tag to the digest its registry serves at that
//! moment (`ghcr.io/acme/api:1.4` becomes `ghcr.io/acme/api:1.4@sha256:…`), so every replica of
//! the rollout runs the same bytes even if the tag moves while nodes pull. The pin is part of
//! what the CSP signs, so every oracle stores the same spec; applying again after the tag moved
//! is a new revision and rolls the new image out.
//!
//! Credentials for private registries come from Docker's config (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`). A registry this machine cannot reach leaves the tag as it is,
//! with a warning: each node then resolves the tag itself. Images already pinned by digest are
//! left alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use r1_crds::check::Source;
use r1_protocol::docker_config::MAX_CONFIG;
use r1_protocol::image_ref::ImageRef;
use r1_registry::{Client, Config, resolve_digest};
use serde_yaml::Value;

/// Longest wait for one image's digest.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The images of the DeeployJob documents in `text` that name a tag (or nothing, meaning
/// `latest`) and no digest, each once, in order of appearance. Text that does not parse names
/// none (validation reports it).
pub fn tagged_images(text: &str) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    for document in documents(text).unwrap_or_default() {
        if let Some(image) = job_image(&document)
            && ImageRef::parse(image).is_ok_and(|r| r.digest.is_none())
            && !images.iter().any(|i| i == image)
        {
            images.push(image.to_owned());
        }
    }
    images
}

/// `text` with every DeeployJob image found in `digests` written as `image@digest`; the text
/// as it was when nothing changes.
pub fn rewrite(text: &str, digests: &BTreeMap<String, String>) -> String {
    let Some(mut parsed) = documents(text) else {
        return text.to_owned();
    };
    let mut changed = false;
    for document in &mut parsed {
        let Some(digest) = job_image(document).and_then(|image| digests.get(image)) else {
            continue;
        };
        let pinned = format!("{}@{digest}", job_image(document).unwrap_or_default());
        if let Some(spec) = document.get_mut("spec").and_then(Value::as_mapping_mut) {
            spec.insert("image".into(), pinned.into());
            changed = true;
        }
    }
    if !changed {
        return text.to_owned();
    }
    parsed
        .iter()
        .filter_map(|d| serde_yaml::to_string(d).ok())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The YAML documents of `text`, or `None` when one does not parse.
fn documents(text: &str) -> Option<Vec<Value>> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()
        .ok()
}

/// The image of a DeeployJob document.
fn job_image(document: &Value) -> Option<&str> {
    (document.get("kind")?.as_str()? == "DeeployJob")
        .then(|| document.get("spec")?.get("image")?.as_str())
        .flatten()
}

/// Docker's config file, when there is one: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
fn docker_config() -> Option<Vec<u8>> {
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() <= MAX_CONFIG).then_some(bytes)
}

/// `sources` with their jobs' image tags pinned, reporting each pin (or why an image keeps
/// its tag) on `out`.
pub async fn pin_sources(
    sources: Vec<Source>,
    out: &mut dyn Write,
) -> std::io::Result<Vec<Source>> {
    let images: Vec<String> = {
        let mut all: Vec<String> = Vec::new();
        for source in &sources {
            for image in tagged_images(&source.text) {
                if !all.contains(&image) {
                    all.push(image);
                }
            }
        }
        all
    };
    if images.is_empty() {
        return Ok(sources);
    }
    let client = Client::new(Config {
        attempts: 1,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..Config::default()
    });
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            writeln!(out, "warning: cannot pin image tags: {e}")?;
            return Ok(sources);
        }
    };
    let config = docker_config();
    let mut digests = BTreeMap::new();
    for image in images {
        match resolve_digest(&client, &image, config.as_deref(), RESOLVE_TIMEOUT).await {
            Ok(digest) => {
                writeln!(out, "image {image} pinned to {digest}")?;
                digests.insert(image, digest);
            }
            Err(reason) => writeln!(
                out,
                "warning: image {image} keeps its tag (cannot resolve it here: {reason}); each node resolves it"
            )?,
        }
    }
    Ok(sources
        .into_iter()
        .map(|source| Source {
            text: rewrite(&source.text, &digests),
            name: source.name,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    const TEXT: &str = "\
# the shop
apiVersion: deeploy.ratio1.ai/v1alpha1
kind: DeeployJob
metadata: {name: web}
spec: {image: 'ghcr.io/acme/web:1', replicas: 2}
---
apiVersion: deeploy.ratio1.ai/v1alpha1
kind: DeeployJob
metadata: {name: pinned}
spec:
  image: ghcr.io/acme/db@sha256:0000000000000000000000000000000000000000000000000000000000000000
---
kind: DeeployProject
metadata: {name: p}
spec: {image: 'not/a:job'}
---
kind: DeeployJob
metadata: {name: bare}
spec: {image: nginx}
";

    #[test]
    fn only_job_images_without_a_digest_are_pinned() {
        assert_eq!(tagged_images(TEXT), ["ghcr.io/acme/web:1", "nginx"]);
        assert!(tagged_images("{: not yaml").is_empty());
    }

    #[test]
    fn rewriting_pins_the_resolved_images_and_keeps_the_rest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let digests = BTreeMap::from([("ghcr.io/acme/web:1".to_owned(), digest.clone())]);
        let rewritten = rewrite(TEXT, &digests);
        let parsed = documents(&rewritten).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            job_image(&parsed[0]),
            Some(format!("ghcr.io/acme/web:1@{digest}").as_str())
        );
        assert_eq!(parsed[0]["spec"]["replicas"], 2);
        assert_eq!(job_image(&parsed[3]), Some("nginx"), "not resolved: kept");
        assert_eq!(parsed[2]["spec"]["image"], "not/a:job");
        assert_eq!(rewrite(TEXT, &BTreeMap::new()), TEXT, "nothing resolved");
    }
}
