//! Where an image lives: a reference resolved to a registry, repository and tag or digest, with
//! Docker Hub's defaults applied, and the URLs of the registry API that address it.

use std::fmt;
use std::net::Ipv4Addr;

use r1_protocol::image_ref::{ImageRef, ImageRefError};
use url::Url;

use crate::digest;
use crate::error::RegistryError;

/// The registry an image reference without one names.
const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's names as users write them.
const DOCKER_HUB_ALIASES: [&str; 2] = [DOCKER_HUB, "index.docker.io"];
/// Where Docker Hub's registry API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag a reference without tag or digest means.
const DEFAULT_TAG: &str = "latest";

/// Where an image lives: registry, repository, and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// `host[:port]` as the reference wrote it, `docker.io` when it named none.
    pub registry: String,
    /// The repository path; a one-component Docker Hub name gets `library/` (`library/nginx`).
    pub repository: String,
    /// The tag, when the reference has one.
    pub tag: Option<String>,
    /// The manifest digest (`sha256:…`), when the reference pins one.
    pub digest: Option<String>,
}

impl ImageName {
    /// Resolves `reference` (`[registry[:port]/]path[:tag][@sha256:…]`).
    pub fn parse(reference: &str) -> Result<Self, RegistryError> {
        let parsed = ImageRef::parse(reference)?;
        if let Some(pinned) = &parsed.digest {
            digest::check(pinned).map_err(|e| ImageRefError {
                reference: reference.to_owned(),
                reason: e.reason,
            })?;
        }
        let registry = parsed.registry.unwrap_or_else(|| DOCKER_HUB.to_owned());
        let repository = if is_docker_hub(&registry) && !parsed.repository.contains('/') {
            format!("library/{}", parsed.repository)
        } else {
            parsed.repository
        };
        Ok(Self {
            registry,
            repository,
            tag: parsed.tag,
            digest: parsed.digest,
        })
    }

    /// What to ask the registry for: the digest if pinned, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// `{scheme}://{host}/v2/{repository}/{kind}/{reference}`, each part escaped as a path
    /// segment; plain HTTP for loopback hosts and those in `plain_http`.
    pub(crate) fn url(
        &self,
        plain_http: &[String],
        kind: &str,
        reference: &str,
    ) -> Result<Url, RegistryError> {
        let host = if is_docker_hub(&self.registry) {
            DOCKER_HUB_API
        } else {
            &self.registry
        };
        let scheme = if is_plain_http(&self.registry, plain_http) {
            "http"
        } else {
            "https"
        };
        let invalid = || ImageRefError {
            reference: self.to_string(),
            reason: "the registry is not a valid host",
        };
        let mut url = Url::parse(&format!("{scheme}://{host}/")).map_err(|_| invalid())?;
        url.path_segments_mut()
            .map_err(|()| invalid())?
            .pop_if_empty()
            .push("v2")
            .extend(self.repository.split('/'))
            .push(kind)
            .push(reference);
        Ok(url)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn is_docker_hub(registry: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| registry.eq_ignore_ascii_case(alias))
}

/// Whether `authority` (`host[:port]`, IPv6 hosts in brackets) is spoken to over plain HTTP:
/// a loopback host, or one listed (with this port, or without a port).
pub(crate) fn is_plain_http(authority: &str, plain_http: &[String]) -> bool {
    let host = host_of(authority);
    is_loopback(host)
        || plain_http
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(authority) || entry.eq_ignore_ascii_case(host))
}

/// The host of `host[:port]`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _port)| host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn name(reference: &str) -> ImageName {
        ImageName::parse(reference).unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let nginx = name("nginx");
        assert_eq!(nginx.registry, "docker.io");
        assert_eq!(nginx.repository, "library/nginx");
        assert_eq!((nginx.tag.as_deref(), nginx.reference()), (None, "latest"));
        assert_eq!(name("docker.io/nginx:1.27").repository, "library/nginx");
        assert_eq!(name("index.docker.io/nginx").repository, "library/nginx");
        assert_eq!(name("bitnami/redis").repository, "bitnami/redis");
        assert_eq!(name("docker.io/bitnami/redis").registry, "docker.io");
        let url = nginx.url(&[], "manifests", "latest").unwrap();
        assert_eq!(
            url.as_str(),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
    }

    #[test]
    fn other_registries_ports_and_digests() {
        let ghcr = name("ghcr.io/ratio1/edge-node:1.2.3");
        assert_eq!(
            (ghcr.registry.as_str(), ghcr.repository.as_str()),
            ("ghcr.io", "ratio1/edge-node")
        );
        assert_eq!(ghcr.reference(), "1.2.3");
        assert_eq!(ghcr.to_string(), "ghcr.io/ratio1/edge-node:1.2.3");
        let single = name("registry.example.com:5000/app");
        assert_eq!(single.registry, "registry.example.com:5000");
        assert_eq!(single.repository, "app", "library/ is Docker Hub's alone");
        let pinned = name(&format!("localhost:5000/team/app:1@{DIGEST}"));
        assert_eq!(pinned.reference(), DIGEST);
        assert_eq!(pinned.tag.as_deref(), Some("1"));
        let url = pinned.url(&[], "blobs", DIGEST).unwrap();
        assert_eq!(
            url.as_str(),
            format!("http://localhost:5000/v2/team/app/blobs/{DIGEST}")
        );
    }

    #[test]
    fn rejects_bad_references_and_digests() {
        for bad in [
            "",
            "Nginx",
            "nginx@sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(
                matches!(
                    ImageName::parse(bad),
                    Err(RegistryError::InvalidReference(_))
                ),
                "{bad:?}"
            );
        }
        let message = ImageName::parse(&format!("nginx@sha512:{}", "0".repeat(128)))
            .unwrap_err()
            .to_string();
        assert!(message.contains("only sha256"), "{message}");
    }

    #[test]
    fn plain_http_for_loopback_and_listed_hosts() {
        let listed = vec!["registry.lan:5000".to_owned(), "mirror.lan".to_owned()];
        for plain in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.8.9.10",
            "[::1]:5000",
            "registry.lan:5000",
            "mirror.lan:8080",
            "MIRROR.lan",
        ] {
            assert!(is_plain_http(plain, &listed), "{plain}");
        }
        for tls in [
            "registry.lan:5001",
            "registry.lan",
            "ghcr.io",
            "10.0.0.1:5000",
        ] {
            assert!(!is_plain_http(tls, &listed), "{tls}");
        }
    }

    #[test]
    fn path_segments_are_escaped() {
        let nginx = name("nginx");
        let url = nginx.url(&[], "manifests", "a/../b?c").unwrap();
        assert_eq!(url.path(), "/v2/library/nginx/manifests/a%2F..%2Fb%3Fc");
    }
}
