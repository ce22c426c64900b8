//! The digest a registry serves for an image reference now, with the credentials a Docker
//! config holds for its registry: what `r1ctl apply` and a Kubernetes-mode oracle pin a job's
//! image tag to, so every replica of a rollout runs the same bytes.

use std::time::Duration;

use r1_protocol::docker_config;
use r1_protocol::secrets::PullCredentials;

use crate::{Client, Credentials, ImageName};

/// Resolves `image` (a tag, or nothing meaning `latest`) to the digest of the manifest or index
/// its registry serves, within `timeout`; `docker_config` (`{"auths": …}`) gives credentials
/// for a private registry. The error says why, for a warning.
pub async fn resolve_digest(
    client: &Client,
    image: &str,
    docker_config: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, String> {
    let name = ImageName::parse(image).map_err(|e| e.to_string())?;
    let credentials = match docker_config {
        Some(config) => docker_config::credentials_for(config, &name.registry)
            .map_err(|e| e.to_string())?
            .map(|c| match c {
                PullCredentials::Basic { username, password } => {
                    Credentials::Basic { username, password }
                }
                PullCredentials::Token { token } => Credentials::Token(token),
            }),
        None => None,
    };
    let manifest = tokio::time::timeout(
        timeout,
        client.manifest(&name, name.reference(), credentials.as_ref()),
    )
    .await
    .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
    .map_err(|e| e.to_string())?;
    Ok(manifest.digest)
}
