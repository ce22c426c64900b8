//! Registry credentials in Docker's config format (`~/.docker/config.json`, the
//! `.dockerconfigjson` of a Kubernetes pull Secret): what a CSP seals as an image pull secret,
//! and how an oracle finds the entry for a job's registry in it.

use serde::Deserialize;

use crate::secrets::PullCredentials;

/// Largest config accepted.
pub const MAX_CONFIG: usize = 16 << 10;
/// The names Docker Hub goes by in image references and configs.
const DOCKER_HUB: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Why a config yields no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// Over [`MAX_CONFIG`].
    #[error("the registry config is {0} bytes; at most {MAX_CONFIG} are read")]
    TooLarge(usize),
    /// Not the JSON of a Docker config.
    #[error("not a Docker registry config (`{{\"auths\": {{…}}}}`): {0}")]
    Malformed(String),
    /// The entry for the registry has nothing usable.
    #[error("the entry for {0} has no username and password, auth or identity token")]
    Empty(String),
}

#[derive(Deserialize)]
struct Config {
    auths: std::collections::BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// The registry an `auths` key or image reference names: scheme and path dropped, lower
/// case, Docker Hub's aliases as one.
fn canonical(registry: &str) -> String {
    let host = registry
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if DOCKER_HUB.contains(&host.as_str()) {
        DOCKER_HUB[0].to_owned()
    } else {
        host
    }
}

/// The credentials `config` holds for `registry` (`host[:port]` as an image reference names
/// it, `docker.io` for Docker Hub), or `None` when it has no entry for it.
pub fn credentials_for(
    config: &[u8],
    registry: &str,
) -> Result<Option<PullCredentials>, DockerConfigError> {
    if config.len() > MAX_CONFIG {
        return Err(DockerConfigError::TooLarge(config.len()));
    }
    let config: Config =
        serde_json::from_slice(config).map_err(|e| DockerConfigError::Malformed(e.to_string()))?;
    let wanted = canonical(registry);
    let Some((key, entry)) = config
        .auths
        .iter()
        .find(|(key, _)| canonical(key) == wanted)
    else {
        return Ok(None);
    };
    if let Some(token) = entry.registrytoken.clone().or(entry.identitytoken.clone()) {
        return Ok(Some(PullCredentials::Token { token }));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(PullCredentials::Basic {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let decoded = entry.auth.as_deref().and_then(|auth| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(PullCredentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    });
    decoded
        .map(Some)
        .ok_or_else(|| DockerConfigError::Empty(key.clone()))
}

/// A config holding `credentials` for `registry` alone: what `r1ctl secret seal
/// --docker-server` seals.
pub fn config_for(registry: &str, credentials: &PullCredentials) -> String {
    let entry = match credentials {
        PullCredentials::Basic { username, password } => {
            serde_json::json!({ "username": username, "password": password })
        }
        PullCredentials::Token { token } => serde_json::json!({ "registrytoken": token }),
    };
    serde_json::json!({ "auths": { registry: entry } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Option<PullCredentials> {
        Some(PullCredentials::Basic {
            username: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn finds_the_entry_of_the_registry_in_each_form_docker_writes() {
        // "acme:s3cret" in base64.
        let config = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "YWNtZTpzM2NyZXQ="},
            "ghcr.io": {"username": "octo", "password": "pat"},
            "quay.io": {"identitytoken": "tok"},
            "127.0.0.1:5000": {"auth": "dXNlcjpwOnc="}
        }}"#;
        assert_eq!(
            credentials_for(config, "docker.io").unwrap(),
            basic("acme", "s3cret")
        );
        assert_eq!(
            credentials_for(config, "GHCR.io").unwrap(),
            basic("octo", "pat")
        );
        assert_eq!(
            credentials_for(config, "quay.io").unwrap(),
            Some(PullCredentials::Token {
                token: "tok".into()
            })
        );
        assert_eq!(
            credentials_for(config, "127.0.0.1:5000").unwrap(),
            basic("user", "p:w"),
            "only the first colon splits"
        );
        assert_eq!(credentials_for(config, "example.com").unwrap(), None);
    }

    #[test]
    fn what_config_for_writes_reads_back() {
        for credentials in [
            basic("a", "b").unwrap(),
            PullCredentials::Token { token: "t".into() },
        ] {
            let config = config_for("localhost:5000", &credentials);
            assert_eq!(
                credentials_for(config.as_bytes(), "localhost:5000").unwrap(),
                Some(credentials)
            );
        }
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        assert!(matches!(
            credentials_for(b"[]", "ghcr.io"),
            Err(DockerConfigError::Malformed(_))
        ));
        assert_eq!(
            credentials_for(br#"{"auths": {"ghcr.io": {}}}"#, "ghcr.io"),
            Err(DockerConfigError::Empty("ghcr.io".into()))
        );
        assert_eq!(
            credentials_for(&vec![b' '; MAX_CONFIG + 1], "ghcr.io"),
            Err(DockerConfigError::TooLarge(MAX_CONFIG + 1))
        );
    }
}
