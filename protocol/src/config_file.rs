//! Reading YAML configuration files with errors that name the file and the field, shared by
//! `r1-oracle` and `r1-node`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use url::Url;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The YAML does not parse into the configuration (serde_yaml names the field and line).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field path and position.
        message: String,
    },
    /// A well-typed value is unusable.
    #[error("config file {path}: {field}: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field, e.g. `broker.url`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads `path` as YAML into `T`, reporting the first problem with its field path.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses `text` (read from `path`) as YAML into `T`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// A field error found after parsing, when a value is well-typed but unusable.
pub fn invalid(path: &Path, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        path: path.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// An MQTT broker URL: `mqtt://` or `mqtts://` with a host.
pub fn check_broker_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "mqtt" | "mqtts") {
        return Err(format!("scheme {:?} is not mqtt or mqtts", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

/// A topic root: non-empty, no MQTT wildcards, no leading or trailing `/`.
pub fn check_topic_root(root: &str) -> Result<(), String> {
    if root.is_empty()
        || root.starts_with('/')
        || root.ends_with('/')
        || root.contains(['+', '#', '\0'])
    {
        return Err(format!(
            "{root:?} must be a non-empty topic without wildcards or leading/trailing '/'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[allow(dead_code)]
        broker: Broker,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Broker {
        #[allow(dead_code)]
        port: u16,
    }

    #[test]
    fn errors_name_the_field() {
        let path = Path::new("node.yaml");
        let err = parse::<Sample>(path, "broker:\n  port: high\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file node.yaml: broker.port: invalid type: string \"high\", expected u16 at line 2 column 9"
        );
        let err = parse::<Sample>(path, "broker:\n  port: 1\n  prot: 2\n").unwrap_err();
        assert!(
            err.to_string().contains("broker: unknown field `prot`"),
            "{err}"
        );
        let err = load::<Sample>(Path::new("/nonexistent/r1.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read config file /nonexistent/r1.yaml"),
            "{err}"
        );
    }
}
