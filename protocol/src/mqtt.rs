//! MQTT client options from a broker URL, the same for every r1 process that talks to the
//! broker (node agents and oracles): the packet size limit, plain or TLS transport, and the
//! login (the URL's user and password, or credentials signed by the client's key).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use url::Url;

use crate::identity::Identity;

/// Largest MQTT packet (remaining length) any r1 client sends or accepts, and what a broker
/// gate lets through: a relayed manifest (the API takes 1 MiB bodies) inside its envelope.
pub const MAX_PACKET_BYTES: usize = 4 << 20;

/// Connections one r1 broker serves at once: the embedded gate closes any beyond, and the
/// mosquitto configuration sets the same `max_connections`.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Seconds between MQTT keep-alive pings: a dead broker is noticed within a few seconds.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How a client logs in; signed credentials are made anew before every connection attempt.
#[derive(Clone)]
pub enum Login {
    /// The user and password written in the broker URL (e.g. for mosquitto's password file).
    Fixed,
    /// Credentials signed by this key ([`crate::broker_auth`]).
    Signed(Identity),
}

impl Login {
    /// Puts fresh credentials into `options` when they are signed; call before each connection.
    pub fn refresh(&self, options: &mut MqttOptions) -> Result<(), String> {
        if let Self::Signed(identity) = self {
            let credentials =
                crate::broker_auth::sign(identity, &options.client_id(), crate::now_ms())
                    .map_err(|e| e.to_string())?;
            options.set_credentials(credentials.username, credentials.password);
        }
        Ok(())
    }
}

/// The last will a node leaves with the broker on its status topic `status_topic`: its signed
/// [`NodeGone`](crate::messages::NodeGone), which the broker publishes when the session ends
/// without a goodbye, so the oracles probe the node at once instead of waiting out the
/// heartbeat grace.
pub fn node_will(identity: &Identity, status_topic: String) -> Result<LastWill, String> {
    let envelope = crate::envelope::Sealer::new(identity.clone())
        .seal(&crate::messages::NodeGone {}, crate::now_ms())
        .map_err(|e| e.to_string())?;
    Ok(LastWill::new(
        status_topic,
        envelope.to_bytes(),
        QoS::AtLeastOnce,
        false,
    ))
}

/// Client options for `url` (`mqtt://[user:password@]host[:port]`, port 1883 by default, or
/// `mqtts://…`, port 8883, trusting `ca_file` or the system's roots) as `client_id`, with a clean
/// session and packets up to [`MAX_PACKET_BYTES`] either way. Without a user in the URL the
/// client logs in with credentials signed by `identity`. The error says what is wrong.
pub fn client_options(
    url: &Url,
    ca_file: Option<&Path>,
    client_id: &str,
    identity: &Identity,
) -> Result<(MqttOptions, Login), String> {
    let host = url.host_str().ok_or_else(|| "no host".to_owned())?;
    let (port, transport) = match url.scheme() {
        "mqtt" => (1883, Transport::tcp()),
        "mqtts" => (8883, Transport::tls_with_config(tls(ca_file)?)),
        other => return Err(format!("scheme {other:?} is not mqtt or mqtts")),
    };
    let mut options = MqttOptions::new(client_id, host, url.port().unwrap_or(port));
    options.set_transport(transport);
    options.set_keep_alive(KEEP_ALIVE);
    options.set_clean_session(true);
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    let login = if url.username().is_empty() {
        Login::Signed(identity.clone())
    } else {
        let password = url.password().unwrap_or("");
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "user or password is not valid UTF-8".to_owned())
        };
        options.set_credentials(decode(url.username())?, decode(password)?);
        Login::Fixed
    };
    login.refresh(&mut options)?;
    Ok((options, login))
}

/// A rustls client configuration on ring trusting `ca_file`, or the system's roots without one.
fn tls(ca_file: Option<&Path>) -> Result<TlsConfiguration, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err("no system CA certificates; set a CA file".to_owned());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// `%XX` escapes of a URL's user or password decoded.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_with_a_user_log_in_with_it() {
        let identity = Identity::generate();
        let url = Url::parse("mqtt://user:p%40ss@127.0.0.1:1884").unwrap();
        let (ok, login) = client_options(&url, None, "n", &identity).unwrap();
        assert_eq!(ok.broker_address(), ("127.0.0.1".to_string(), 1884));
        assert!(matches!(login, Login::Fixed));
        let credentials = ok.credentials().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("user", "p@ss")
        );
        assert_eq!(ok.max_packet_size(), MAX_PACKET_BYTES);
        let (default_port, _) =
            client_options(&Url::parse("mqtt://broker").unwrap(), None, "n", &identity).unwrap();
        assert_eq!(default_port.broker_address().1, 1883);
        let err = client_options(&Url::parse("http://x").unwrap(), None, "n", &identity)
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("not mqtt"), "{err}");
    }

    #[test]
    fn without_a_user_the_login_is_signed_and_refreshed() {
        let identity = Identity::generate();
        let url = Url::parse("mqtt://127.0.0.1").unwrap();
        let (mut options, login) = client_options(&url, None, "node-7", &identity).unwrap();
        let first = options.credentials().unwrap();
        assert_eq!(
            crate::broker_auth::verify("node-7", &first.username, &first.password, crate::now_ms()),
            Ok(identity.address())
        );
        std::thread::sleep(Duration::from_millis(2));
        login.refresh(&mut options).unwrap();
        assert_ne!(options.credentials().unwrap().password, first.password);
    }

    #[test]
    fn mqtts_needs_a_readable_ca_file() {
        let identity = Identity::generate();
        let url = Url::parse("mqtts://broker.example").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_options(&url, Some(&missing), "n", &identity)
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = client_options(&url, Some(&empty), "n", &identity)
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
    }
}
