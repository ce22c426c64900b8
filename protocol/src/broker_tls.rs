//! The files a broker listener serves TLS with. The oracle's configuration names them for its
//! embedded broker gate, and `r1ctl broker mosquitto-config` for mosquitto, in the same shape.

use std::path::PathBuf;

/// The listener's TLS certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}
