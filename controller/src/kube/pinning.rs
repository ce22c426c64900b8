//! Image tags on the kube path are pinned as `r1ctl apply` pins them: a `DeeployJob` naming
//! `ghcr.io/acme/api:1.4` enters the store as `ghcr.io/acme/api:1.4@sha256:…`, the digest its
//! registry serves when the job's spec changes, so every replica of the rollout runs the same
//! bytes even if the tag moves while nodes pull. Reconciles in between keep the stored digest:
//! the tag is resolved again only with a new spec (a new rollout), never on a resync.
//!
//! A private registry is asked with the job's pull secret (`imagePullSecret.name`, read by
//! [`crate::kube::secrets`]). A registry the oracle cannot reach leaves the tag as it is, with a
//! warning: each node then resolves the tag itself.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use r1_crds::DeeployJobSpec;
use r1_protocol::image_ref::ImageRef;
use r1_registry::{Client, Config, RegistryError, resolve_digest};
use serde_json::Value;

/// Longest wait for one image's digest.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an image whose tag could not be resolved is not asked for again.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);

/// Resolves job image tags to digests.
#[derive(Debug)]
pub struct ImagePinner {
    client: Client,
    failed: Mutex<HashMap<String, (Instant, String)>>,
}

impl ImagePinner {
    /// A pinner asking each registry once, within short time limits (a reconcile waits on it).
    pub fn new() -> Result<Self, RegistryError> {
        let client = Client::new(Config {
            attempts: 1,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            ..Config::default()
        })?;
        Ok(Self {
            client,
            failed: Mutex::default(),
        })
    }

    /// The digest `image`'s registry serves now, asked with `docker_config`'s credentials. A
    /// failure is remembered for a minute, so reconciles do not each wait on a registry that
    /// does not answer.
    pub async fn resolve(
        &self,
        image: &str,
        docker_config: Option<&[u8]>,
    ) -> Result<String, String> {
        let recent = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(image)
            .filter(|(at, _)| at.elapsed() < FAILURE_MEMORY)
            .map(|(_, why)| why.clone());
        if let Some(why) = recent {
            return Err(why);
        }
        let resolved = resolve_digest(&self.client, image, docker_config, RESOLVE_TIMEOUT).await;
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match &resolved {
            Ok(_) => failed.remove(image),
            Err(why) => failed.insert(image.to_owned(), (Instant::now(), why.clone())),
        };
        resolved
    }
}

/// The image of a `DeeployJob` object when it names a tag (or nothing, meaning `latest`) and no
/// digest.
pub fn tagged_image(object: &DynamicObject) -> Option<String> {
    let image = object.data.get("spec")?.get("image")?.as_str()?;
    ImageRef::parse(image)
        .is_ok_and(|r| r.digest.is_none())
        .then(|| image.to_owned())
}

/// The image the store holds for `image` pinned, `image@sha256:…`, if it holds one.
pub fn stored_pin(stored: Option<&DeeployJobSpec>, image: &str) -> Option<String> {
    let stored = stored?.image.as_deref()?;
    let digest = stored.strip_prefix(image)?.strip_prefix('@')?;
    (!digest.is_empty() && !digest.contains('@')).then(|| stored.to_owned())
}

/// `object` with its spec's image set to `image`.
pub fn with_image(object: &DynamicObject, image: &str) -> DynamicObject {
    let mut object = object.clone();
    if let Some(spec) = object.data.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("image".to_owned(), Value::String(image.to_owned()));
    }
    object
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use serde_json::json;

    use super::*;

    fn job(image: &str) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: Default::default(),
            data: json!({"spec": {"image": image, "replicas": 2}}),
        }
    }

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn only_tags_without_a_digest_are_pinned() {
        assert_eq!(
            tagged_image(&job("ghcr.io/acme/api:1.4")).as_deref(),
            Some("ghcr.io/acme/api:1.4")
        );
        assert_eq!(tagged_image(&job("nginx")).as_deref(), Some("nginx"));
        assert_eq!(tagged_image(&job(&format!("nginx:1@{DIGEST}"))), None);
        assert_eq!(tagged_image(&job("NOT AN IMAGE")), None);
        let pinned = with_image(&job("nginx:1"), &format!("nginx:1@{DIGEST}"));
        assert_eq!(pinned.data["spec"]["image"], format!("nginx:1@{DIGEST}"));
        assert_eq!(pinned.data["spec"]["replicas"], 2);
    }

    #[test]
    fn the_stored_pin_of_the_same_tag_is_found() {
        let example: Value =
            serde_yaml::from_str(include_str!("../../../crds/examples/job-http.yaml")).unwrap();
        let mut spec = example["spec"].clone();
        spec["image"] = json!(format!("nginx:1@{DIGEST}"));
        let spec: DeeployJobSpec = serde_json::from_value(spec).unwrap();
        assert_eq!(
            stored_pin(Some(&spec), "nginx:1"),
            Some(format!("nginx:1@{DIGEST}"))
        );
        assert_eq!(stored_pin(Some(&spec), "nginx:2"), None, "another tag");
        assert_eq!(stored_pin(Some(&spec), "nginx"), None, "another tag");
        assert_eq!(stored_pin(None, "nginx:1"), None);
    }
}
