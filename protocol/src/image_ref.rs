//! Container image references (`[registry[:port]/]path[:tag][@algo:hex]`), following the grammar
//! of the OCI distribution reference so that whatever passes here a registry or containerd accepts.

use std::fmt;

/// Longest repository name a registry accepts.
const NAME_MAX: usize = 255;
/// Longest tag.
const TAG_MAX: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host and optional port, when the reference names one.
    pub registry: Option<String>,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    /// Tag, e.g. `1.27`.
    pub tag: Option<String>,
    /// Content digest, e.g. `sha256:…`.
    pub digest: Option<String>,
}

/// Why an image reference is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not a valid image reference: {reason}")]
pub struct ImageRefError {
    /// The reference as written.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ImageRef {
    /// Parses `reference`, explaining the first thing that is wrong.
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        let fail = |reason| ImageRefError {
            reference: reference.to_owned(),
            reason,
        };
        if reference.is_empty() {
            return Err(fail("it is empty"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(fail(
                        "the digest must be <algorithm>:<at least 32 hex digits>",
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                let tag = &rest[colon + 1..];
                if !is_tag(tag) {
                    return Err(fail(
                        "the tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
                    ));
                }
                (&rest[..colon], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.len() > NAME_MAX {
            return Err(fail("the name is longer than 255 characters"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => (Some(first), path),
            _ => (None, name),
        };
        if registry.is_some_and(|registry| !is_registry(registry)) {
            return Err(fail(
                "the registry must be a host name with an optional :port",
            ));
        }
        if repository.is_empty() || !repository.split('/').all(is_path_component) {
            return Err(fail(
                "the repository path must be lowercase letters and digits separated by '/', '.', '_', '__' or '-'",
            ));
        }
        Ok(Self {
            registry: registry.map(str::to_owned),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The first path element names a registry when it has a dot or a port, or is `localhost`.
fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn is_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && host_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

/// Whether `tag` is a valid tag on its own (1-128 of `[A-Za-z0-9_.-]`, not starting with `.` or
/// `-`), for callers that take a tag apart from a full reference.
pub fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|c| {
        c.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_common_forms() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(
            (r.registry, r.repository.as_str(), r.tag),
            (None, "nginx", None)
        );
        let r = ImageRef::parse("ghcr.io/ratio1/edge-node:1.2.3").unwrap();
        assert_eq!(r.registry.as_deref(), Some("ghcr.io"));
        assert_eq!(r.repository, "ratio1/edge-node");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        let r = ImageRef::parse("localhost:5000/my_app__x/web-app:latest").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        let with_digest = format!("library/postgres:16@{DIGEST}");
        let r = ImageRef::parse(&with_digest).unwrap();
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.to_string(), with_digest);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "nginx@sha256:abc",
            "my image",
            "a//b",
            "a/-b",
            "ghcr.io:port/x",
            "x:tag:other",
            "a--.b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
