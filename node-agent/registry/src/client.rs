//! [`Client`]: manifests and blobs fetched from registries, authenticated, retried, bounded and
//! verified.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use r1_protocol::image_ref::{self, ImageRefError};
use tokio::io::{AsyncWriteExt, BufWriter};
use url::Url;

use crate::auth::{self, Auth};
use crate::backoff;
use crate::body;
use crate::config::{Config, OVERALL_TIMEOUT};
use crate::credentials::Credentials;
use crate::digest;
use crate::error::{Failed, RegistryError};
use crate::manifest::{self, Manifest};
use crate::name::ImageName;
use crate::status::{self, Source};
use crate::transport::{Http, Response};

/// The header in which registries announce a manifest's digest.
const CONTENT_DIGEST: &str = "docker-content-digest";
/// Buffer between the network and a blob's file.
const WRITE_BUFFER: usize = 256 << 10;

/// A registry client for a node: one HTTP connection pool and one cache of tokens, shared by
/// its clones.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    config: Config,
    auth: auth::Cache,
}

/// One GET to a registry.
struct Request<'a> {
    name: &'a ImageName,
    url: &'a Url,
    credentials: Option<&'a Credentials>,
    accept: Option<&'static str>,
    /// What is asked for, for errors (`manifest latest`).
    what: &'a str,
}

/// Where a blob goes and what it must be.
struct Blob<'a> {
    digest: &'a str,
    size: u64,
    path: &'a Path,
    progress: &'a AtomicU64,
}

impl Client {
    /// A client with `config`'s limits, trusting the system's CA certificates (rustls on ring).
    pub fn new(config: Config) -> Result<Self, RegistryError> {
        let http = Http::new(&config).map_err(|e| {
            RegistryError::Io(std::io::Error::other(format!("TLS client setup: {e}")))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                auth: auth::Cache::default(),
            }),
        })
    }

    /// The manifest or index `reference` (a tag or a `sha256:` digest) names, verified: by
    /// digest, the sha256 of its bytes must be that digest; by tag, it must be the
    /// `Docker-Content-Digest` the registry announced, when it announced one.
    pub async fn manifest(
        &self,
        name: &ImageName,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Manifest, RegistryError> {
        let pinned = if reference.contains(':') {
            digest::check(reference)?;
            Some(reference)
        } else if image_ref::is_tag(reference) {
            None
        } else {
            return Err(ImageRefError {
                reference: reference.to_owned(),
                reason: "a tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            }
            .into());
        };
        let url = name.url(&self.inner.config.plain_http, "manifests", reference)?;
        let what = format!("manifest {reference}");
        let request = Request {
            name,
            url: &url,
            credentials,
            accept: Some(manifest::ACCEPT),
            what: &what,
        };
        let mut made = 0;
        loop {
            made += 1;
            let attempt =
                tokio::time::timeout(OVERALL_TIMEOUT, self.manifest_once(&request, pinned));
            let result = attempt.await.unwrap_or_else(|_| {
                Err(RegistryError::Unreachable {
                    registry: name.registry.clone(),
                    attempts: 1,
                    detail: format!("no manifest within {} s", OVERALL_TIMEOUT.as_secs()),
                }
                .into())
            });
            match result {
                Ok(manifest) => return Ok(manifest),
                Err(failed) => tokio::time::sleep(self.retry_delay(made, failed)?).await,
            }
        }
    }

    /// One try at a manifest, verified against `pinned` or the digest the registry announces.
    async fn manifest_once(
        &self,
        request: &Request<'_>,
        pinned: Option<&str>,
    ) -> Result<Manifest, Failed> {
        let response = self.get(request).await?;
        let content_type = response.header(CONTENT_TYPE.as_str()).map(str::to_owned);
        let announced = response.header(CONTENT_DIGEST).map(str::to_owned);
        let limit = self.inner.config.max_manifest_bytes;
        let bytes = body::read_capped(response, limit, request.what).await?;
        let actual = digest::of(&bytes);
        let expected = match (pinned, announced.as_deref()) {
            (Some(pinned), _) => Some(pinned),
            (None, Some(announced)) if digest::check(announced).is_ok() => Some(announced),
            (None, Some(announced)) => {
                tracing::debug!(
                    image = %request.name,
                    announced,
                    "ignoring a Docker-Content-Digest that is not sha256"
                );
                None
            }
            (None, None) => None,
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                expected: expected.to_owned(),
                actual,
            }
            .into());
        }
        Ok(Manifest {
            media_type: manifest::media_type(content_type.as_deref(), &bytes),
            digest: actual,
            bytes,
        })
    }

    /// Streams blob `digest` of exactly `size` bytes into `path` (created or truncated),
    /// checking its sha256 and size as it arrives and reading no byte past `size`. Bytes are
    /// added to `progress` as they are written, and taken back when a retry starts over or the
    /// download fails. On any failure `path` is removed.
    pub async fn blob_to_file(
        &self,
        name: &ImageName,
        digest: &str,
        size: u64,
        credentials: Option<&Credentials>,
        path: &Path,
        progress: &AtomicU64,
    ) -> Result<(), RegistryError> {
        let blob = Blob {
            digest,
            size,
            path,
            progress,
        };
        let result = self.fetch_blob(name, credentials, &blob).await;
        if result.is_err() {
            match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a failed download");
                }
                _ => {}
            }
        }
        result
    }

    async fn fetch_blob(
        &self,
        name: &ImageName,
        credentials: Option<&Credentials>,
        blob: &Blob<'_>,
    ) -> Result<(), RegistryError> {
        digest::check(blob.digest)?;
        let url = name.url(&self.inner.config.plain_http, "blobs", blob.digest)?;
        let what = format!("blob {}", blob.digest);
        let request = Request {
            name,
            url: &url,
            credentials,
            accept: None,
            what: &what,
        };
        let mut made = 0;
        loop {
            made += 1;
            let mut written = 0;
            match self.download(&request, blob, &mut written).await {
                Ok(()) => return Ok(()),
                Err(failed) => {
                    blob.progress.fetch_sub(written, Ordering::Relaxed);
                    tokio::time::sleep(self.retry_delay(made, failed)?).await;
                }
            }
        }
    }

    /// One try at `blob`, counting the bytes written (and added to its progress) in `written`.
    async fn download(
        &self,
        request: &Request<'_>,
        blob: &Blob<'_>,
        written: &mut u64,
    ) -> Result<(), Failed> {
        let mut response = self.get(request).await?;
        let mismatch = |actual| RegistryError::SizeMismatch {
            digest: blob.digest.to_owned(),
            expected: blob.size,
            actual,
        };
        if let Some(announced) = response.content_length()
            && announced != blob.size
        {
            return Err(mismatch(announced).into());
        }
        let io = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}: {e}", blob.path.display()))
        };
        let file = tokio::fs::File::create(blob.path).await.map_err(io)?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = digest::Hasher::default();
        while let Some(chunk) = response.chunk().await? {
            let length = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            let total = written.saturating_add(length);
            if total > blob.size {
                return Err(mismatch(total).into());
            }
            file.write_all(&chunk).await.map_err(io)?;
            hasher.update(&chunk);
            *written = total;
            blob.progress.fetch_add(length, Ordering::Relaxed);
        }
        if *written != blob.size {
            return Err(mismatch(*written).into());
        }
        file.flush().await.map_err(io)?;
        let actual = hasher.finish();
        if actual != blob.digest {
            return Err(RegistryError::DigestMismatch {
                expected: blob.digest.to_owned(),
                actual,
            }
            .into());
        }
        Ok(())
    }

    /// Sends `request` with the cached authentication; on a 401, answers the challenge and
    /// sends it once more. Anything but success is an error.
    async fn get(&self, request: &Request<'_>) -> Result<Response, Failed> {
        let inner = &*self.inner;
        let key = auth::Key::new(request.name, request.credentials);
        let mut auth: Option<Auth> = inner.auth.get(&key);
        let mut challenged = false;
        loop {
            let mut headers = HeaderMap::new();
            if let Some(accept) = request.accept {
                headers.insert(ACCEPT, HeaderValue::from_static(accept));
            }
            if let Some(auth) = &auth {
                auth.apply(&mut headers);
            }
            let response = inner
                .http
                .get(request.url, headers)
                .await
                .map_err(|e| e.into_registry(request.name))?;
            if response.status().is_success() {
                return Ok(response);
            }
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                let source = Source::Registry { what: request.what };
                return Err(
                    status::failure(request.name, request.credentials, source, response).await,
                );
            }
            challenged = true;
            inner.auth.forget(&key);
            let context = auth::Context {
                http: &inner.http,
                image: request.name,
                credentials: request.credentials,
                plain_http: &inner.config.plain_http,
            };
            let challenge = response.raw_header(WWW_AUTHENTICATE.as_str());
            let (answer, lifetime) = auth::answer(&context, challenge).await?;
            inner.auth.put(key.clone(), answer.clone(), lifetime);
            auth = Some(answer);
        }
    }

    /// After try number `made` failed: the wait before the next, or the error to give up with
    /// (not worth retrying, or [`Config::attempts`] made). The wait is the registry's
    /// `Retry-After` if it sent one, else [`backoff::delay`]'s.
    fn retry_delay(&self, made: u32, failed: Failed) -> Result<Duration, RegistryError> {
        let config = &self.inner.config;
        let Failed {
            mut error,
            retry_after,
        } = failed;
        if let RegistryError::Unreachable { attempts, .. } = &mut error {
            *attempts = made;
        }
        if made >= config.attempts || !error.is_retried_here() {
            return Err(error);
        }
        let delay = retry_after.unwrap_or_else(|| backoff::delay(config.first_backoff, made - 1));
        tracing::debug!(%error, attempt = made, ?delay, "registry request failed, retrying");
        Ok(delay)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
