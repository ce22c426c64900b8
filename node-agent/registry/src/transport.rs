//! HTTP/1.1 GETs over TCP or TLS (rustls on ring, the system's CA certificates), pooled, with
//! the redirects and time limits a registry client needs.
//!
//! Built on hyper rather than reqwest: reqwest's rustls support is a crate feature, and
//! enabling it here enables it for every reqwest client in the same workspace build, where
//! clients that never asked for TLS then panic for want of a default crypto provider.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, LOCATION, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::config::Config;
use crate::error::RegistryError;
use crate::name::ImageName;

/// Redirects followed per request (registries redirect blobs to storage, once or twice).
const MAX_REDIRECTS: usize = 10;
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Sent with every request.
const AGENT: &str = concat!("r1-node/", env!("CARGO_PKG_VERSION"));

/// A pooled HTTP client with the node's time limits.
pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// Longest wait for a response's status and headers (connection and TLS included).
    head_timeout: Duration,
    /// Longest wait for the next bytes of a body.
    read_timeout: Duration,
}

/// Why a GET got no usable response.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No (timely) answer from `host`.
    Unreachable {
        /// The host that did not answer (a redirect's target, perhaps).
        host: String,
        /// What happened, with its causes.
        detail: String,
    },
    /// A redirect that cannot be followed.
    Redirect {
        /// Its status.
        status: u16,
        /// Why.
        detail: String,
    },
}

impl HttpError {
    /// The registry error for a request about `image`.
    pub(crate) fn into_registry(self, image: &ImageName) -> RegistryError {
        match self {
            Self::Unreachable { host, detail } => RegistryError::Unreachable {
                registry: host,
                attempts: 1,
                detail,
            },
            Self::Redirect { status, detail } => RegistryError::Status {
                image: image.to_string(),
                status,
                detail,
            },
        }
    }
}

impl Http {
    /// A client with `config`'s time limits.
    pub(crate) fn new(config: &Config) -> Result<Self, rustls::Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(Self {
            client,
            head_timeout: config.connect_timeout.saturating_add(config.read_timeout),
            read_timeout: config.read_timeout,
        })
    }

    /// GETs `url` with `headers`, following redirects. `Authorization` goes no further than
    /// the origin (scheme, host and port) of `url`: registries redirect blobs to storage
    /// elsewhere, which must not see the registry's credentials.
    pub(crate) async fn get(
        &self,
        url: &Url,
        mut headers: HeaderMap,
    ) -> Result<Response, HttpError> {
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        let origin = url.origin();
        let mut url = url.clone();
        let mut redirects = 0;
        loop {
            let host = authority(&url);
            let unreachable = |detail: String| HttpError::Unreachable {
                host: host.clone(),
                detail,
            };
            let uri: Uri = url
                .as_str()
                .parse()
                .map_err(|e| unreachable(describe(&e)))?;
            let mut request = Request::get(uri)
                .body(Empty::new())
                .map_err(|e| unreachable(describe(&e)))?;
            *request.headers_mut() = headers.clone();
            let response = tokio::time::timeout(self.head_timeout, self.client.request(request))
                .await
                .map_err(|_| {
                    unreachable(format!(
                        "no response within {} s",
                        self.head_timeout.as_secs_f32()
                    ))
                })?
                .map_err(|e| unreachable(describe(&e)))?;
            let status = response.status();
            let location = match status {
                StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT => response.headers().get(LOCATION),
                _ => None,
            };
            let Some(location) = location else {
                let (parts, body) = response.into_parts();
                return Ok(Response {
                    status,
                    headers: parts.headers,
                    body,
                    host,
                    read_timeout: self.read_timeout,
                });
            };
            let redirect = |detail: String| HttpError::Redirect {
                status: status.as_u16(),
                detail,
            };
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(redirect(format!("more than {MAX_REDIRECTS} redirects")));
            }
            let next = location
                .to_str()
                .ok()
                .and_then(|location| url.join(location).ok())
                .filter(|next| matches!(next.scheme(), "http" | "https"))
                .ok_or_else(|| redirect(format!("redirect to an invalid location {location:?}")))?;
            if next.origin() != origin {
                headers.remove(AUTHORIZATION);
            }
            url = next;
        }
    }
}

/// A response whose body is read chunk by chunk, each within the read timeout.
pub(crate) struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    /// Who answered, for errors.
    host: String,
    read_timeout: Duration,
}

impl Response {
    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The value of header `name`, if it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The header `name`, as sent.
    pub(crate) fn raw_header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// The body's length, when the response announces it.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header(CONTENT_LENGTH.as_str())?.trim().parse().ok()
    }

    /// The next bytes of the body, `None` at its end; no bytes for a read timeout is an error.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        let unreachable = |detail| RegistryError::Unreachable {
            registry: self.host.clone(),
            attempts: 1,
            detail,
        };
        loop {
            let frame = tokio::time::timeout(self.read_timeout, self.body.frame())
                .await
                .map_err(|_| {
                    unreachable(format!(
                        "the transfer stalled for {} s",
                        self.read_timeout.as_secs_f32()
                    ))
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(unreachable(describe(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// `host[:port]` of `url`, for messages and the plain-HTTP list.
pub(crate) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `error` and its causes, one after the other (a cause its parent already quotes is skipped).
fn describe(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// rustls on ring trusting the system's CA certificates. Without any, HTTPS registries fail
/// verification (plain-HTTP ones still work), so that is a warning rather than an error.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "loading system CA certificates");
    }
    roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        tracing::warn!("no system CA certificates: HTTPS registries will fail verification");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
