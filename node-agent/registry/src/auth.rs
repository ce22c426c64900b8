//! Answering a registry's 401 challenge — the distribution token flow for `Bearer`, the pull
//! secret itself for `Basic` — and a cache of the answers, per registry, repository and
//! credentials, until they expire.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::body::{self, SMALL_BODY};
use crate::challenge::{self, Challenge};
use crate::config::OVERALL_TIMEOUT;
use crate::credentials::Credentials;
use crate::error::{Failed, RegistryError};
use crate::name::{self, ImageName};
use crate::status::{self, Source};
use crate::transport::{self, Http};

/// A token's lifetime when the token service does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// A token is dropped this long before it expires, so that none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// How long an answer that does not expire (Basic, an identity token) is kept.
const FIXED_LIFETIME: Duration = Duration::from_secs(3600);

/// What the cache is indexed by: a token is scoped to one repository, and obtained with one
/// pull secret (or none) that other requests must not borrow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    registry: String,
    repository: String,
    credentials: Option<[u8; 32]>,
}

impl Key {
    /// The key of requests for `image` made with `credentials`.
    pub(crate) fn new(image: &ImageName, credentials: Option<&Credentials>) -> Self {
        Self {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            credentials: credentials.map(Credentials::fingerprint),
        }
    }
}

/// The `Authorization` that answers a registry's challenge: `Bearer` with a token from the
/// token service or the pull secret's identity token, or `Basic` with its user name and
/// password. Marked sensitive, so that it stays out of debug output.
#[derive(Clone)]
pub(crate) struct Auth(HeaderValue);

impl Auth {
    /// Adds this authentication to `headers`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(AUTHORIZATION, self.0.clone());
    }

    /// `{scheme} {value}`; `None` if that is no valid header value (a token with a newline).
    fn new(scheme: &str, value: &str) -> Option<Self> {
        let mut header = HeaderValue::from_str(&format!("{scheme} {value}")).ok()?;
        header.set_sensitive(true);
        Some(Self(header))
    }

    fn basic(username: &str, password: &str) -> Option<Self> {
        Self::new("Basic", &STANDARD.encode(format!("{username}:{password}")))
    }
}

/// Answers that worked, until they expire.
#[derive(Default)]
pub(crate) struct Cache(Mutex<HashMap<Key, (Auth, Instant)>>);

impl Cache {
    /// The unexpired answer for `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<Auth> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(auth, _)| auth.clone())
    }

    /// Keeps `auth` for `key` during `lifetime`, dropping expired answers.
    pub(crate) fn put(&self, key: Key, auth: Auth, lifetime: Duration) {
        let now = Instant::now();
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (_, until)| *until > now);
        entries.insert(key, (auth, now + lifetime));
    }

    /// Drops the answer for `key` (the registry refused it).
    pub(crate) fn forget(&self, key: &Key) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// What answering a challenge needs.
pub(crate) struct Context<'a> {
    /// The HTTP client (its timeouts and TLS).
    pub(crate) http: &'a Http,
    /// The image the request was for (its repository is the token's scope).
    pub(crate) image: &'a ImageName,
    /// The pull secret, if the job gave one.
    pub(crate) credentials: Option<&'a Credentials>,
    /// Hosts allowed over plain HTTP, token services included.
    pub(crate) plain_http: &'a [String],
}

/// Answers the challenge in a 401's `WWW-Authenticate` header: the authentication to retry
/// with, and how long it may be reused.
pub(crate) async fn answer(
    context: &Context<'_>,
    header: Option<&HeaderValue>,
) -> Result<(Auth, Duration), Failed> {
    let header = header
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| refused(context, "the registry answered 401 without a challenge"))?;
    let challenges = challenge::parse(header).map_err(|e| refused(context, &e.to_string()))?;
    if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
        return bearer_token(context, bearer).await;
    }
    if challenges.iter().any(|c| c.scheme == "basic") {
        return match context.credentials {
            Some(Credentials::Basic { username, password }) => Auth::basic(username, password)
                .map(|auth| (auth, FIXED_LIFETIME))
                .ok_or_else(|| refused(context, "the credentials cannot be sent as a header")),
            Some(Credentials::Token(_)) => Err(refused(
                context,
                "the registry asks for a user name and password; the pull secret holds a token",
            )),
            None => Err(RegistryError::CredentialsRequired {
                image: context.image.to_string(),
            }
            .into()),
        };
    }
    Err(refused(
        context,
        &format!("the registry asks for an unsupported authentication: {header}"),
    ))
}

/// A token for a `Bearer` challenge: the identity token given, or one from the token service
/// (asked with the pull secret's user name and password, or anonymously).
async fn bearer_token(
    context: &Context<'_>,
    challenge: &Challenge,
) -> Result<(Auth, Duration), Failed> {
    if let Some(Credentials::Token(token)) = context.credentials {
        let auth = Auth::new("Bearer", token)
            .ok_or_else(|| refused(context, "the pull secret's token is not valid in a header"))?;
        return Ok((auth, FIXED_LIFETIME));
    }
    let realm = challenge
        .param("realm")
        .ok_or_else(|| refused(context, "the Bearer challenge names no token service"))?;
    let mut url = Url::parse(realm)
        .map_err(|e| refused(context, &format!("token service {realm:?}: {e}")))?;
    let authority = transport::authority(&url);
    let plain_ok = url.scheme() == "http" && name::is_plain_http(&authority, context.plain_http);
    if url.scheme() != "https" && !plain_ok {
        return Err(refused(
            context,
            &format!(
                "token service {realm} is not HTTPS (list its host as plain HTTP to allow it)"
            ),
        ));
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = challenge.param("service") {
            query.append_pair("service", service);
        }
        query.append_pair(
            "scope",
            &format!("repository:{}:pull", context.image.repository),
        );
    }
    let (token, lifetime) = tokio::time::timeout(OVERALL_TIMEOUT, fetch_token(context, &url))
        .await
        .map_err(|_| RegistryError::Unreachable {
            registry: authority,
            attempts: 1,
            detail: format!(
                "the token service did not answer within {} s",
                OVERALL_TIMEOUT.as_secs()
            ),
        })??;
    let auth = Auth::new("Bearer", &token)
        .ok_or_else(|| refused(context, "the token is not valid in a header"))?;
    Ok((auth, lifetime.saturating_sub(EXPIRY_MARGIN)))
}

/// Asks the token service at `url` for a token, with the pull secret's user name and password
/// when there are some.
async fn fetch_token(context: &Context<'_>, url: &Url) -> Result<(String, Duration), Failed> {
    let mut headers = HeaderMap::new();
    if let Some(Credentials::Basic { username, password }) = context.credentials {
        Auth::basic(username, password)
            .ok_or_else(|| refused(context, "the credentials cannot be sent as a header"))?
            .apply(&mut headers);
    }
    let response = context
        .http
        .get(url, headers)
        .await
        .map_err(|e| e.into_registry(context.image))?;
    if !response.status().is_success() {
        return Err(status::failure(
            context.image,
            context.credentials,
            Source::TokenService,
            response,
        )
        .await);
    }
    let body = body::read_capped(response, SMALL_BODY, "token response").await?;
    parse_token(&body).ok_or_else(|| refused(context, "the token service's answer holds no token"))
}

/// The token of a token service's answer (`token`, else `access_token`) and its lifetime.
fn parse_token(body: &[u8]) -> Option<(String, Duration)> {
    #[derive(Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let token = answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token.filter(|t| !t.is_empty()))?;
    let lifetime = answer
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Some((token, lifetime))
}

/// The registry's authentication cannot be satisfied.
fn refused(context: &Context<'_>, detail: &str) -> Failed {
    RegistryError::Denied {
        image: context.image.to_string(),
        detail: detail.to_owned(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers() {
        assert_eq!(
            parse_token(br#"{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#),
            Some(("abc".to_owned(), Duration::from_secs(300)))
        );
        assert_eq!(
            parse_token(br#"{"access_token":"xyz"}"#),
            Some(("xyz".to_owned(), DEFAULT_LIFETIME))
        );
        assert_eq!(
            parse_token(br#"{"token":"","access_token":"xyz"}"#).map(|(t, _)| t),
            Some("xyz".to_owned())
        );
        assert_eq!(parse_token(br#"{"expires_in":300}"#), None);
        assert_eq!(parse_token(b"<html>"), None);
    }

    #[test]
    fn basic_and_bearer_headers() {
        let mut headers = HeaderMap::new();
        Auth::basic("alice", "secret").unwrap().apply(&mut headers);
        assert_eq!(headers[AUTHORIZATION], "Basic YWxpY2U6c2VjcmV0");
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert!(Auth::new("Bearer", "eyJ.abc-def_ghi").is_some());
        assert!(Auth::new("Bearer", "line\nbreak").is_none());
    }

    #[test]
    fn cache_keys_by_credentials_and_expires() {
        let image = ImageName::parse("ghcr.io/team/app").unwrap();
        let secret = Credentials::Token("t".to_owned());
        let anonymous = Key::new(&image, None);
        let with_secret = Key::new(&image, Some(&secret));
        let cache = Cache::default();
        let auth = Auth::new("Bearer", "x").unwrap();
        cache.put(with_secret.clone(), auth.clone(), Duration::from_secs(60));
        assert!(cache.get(&with_secret).is_some());
        assert!(
            cache.get(&anonymous).is_none(),
            "a secret's answer is its own"
        );
        cache.put(anonymous.clone(), auth, Duration::ZERO);
        assert!(cache.get(&anonymous).is_none(), "expired");
        cache.forget(&with_secret);
        assert!(cache.get(&with_secret).is_none());
    }
}
