//! `r1ctl apply`, `get`, `describe` and `delete`: the Deeploy API client. Every request is
//! signed with the CSP key; manifests are checked locally first so mistakes fail fast, and the
//! oracle checks everything again.

use std::io::Write;

use r1_crds::api::kinds;
use r1_crds::api::object::{ObjectKey, StoredObject};
use r1_crds::api::outcome::{Action, Applied, DeleteAction, Deleted};
use r1_crds::api::wire::{ApiInfo, ApplyResponse, ErrorBody, ListResponse, OracleKeys};
use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use r1_protocol::api_auth;
use r1_protocol::identity::IdentityError;
use r1_protocol::{Identity, now_ms};
use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

pub(crate) mod print;

pub use print::OutputFormat;

/// Server used when neither `--server` nor `R1_SERVER` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";

/// Why a remote command failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server URL is unusable.
    #[error("server {url:?}: {reason}")]
    BadServer {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {server}: {source}")]
    Transport {
        /// The server.
        server: String,
        /// Underlying error.
        source: reqwest::Error,
    },
    /// The server refused the request.
    #[error("{} ({status})", .body.reason)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's explanation.
        body: ErrorBody,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server (HTTP {status}): {text}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// Start of the body, or the decoding error.
        text: String,
    },
    /// Signing failed.
    #[error("cannot sign the request: {0}")]
    Sign(#[from] IdentityError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A raw answer: status and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// A Deeploy API client signing as one CSP, or as a delegate acting for one.
#[derive(Debug, Clone)]
pub struct Client {
    server: Url,
    identity: Identity,
    owner: Option<alloy_primitives::Address>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `server` (e.g. `http://127.0.0.1:8787`) signing as `identity`.
    pub fn new(server: &str, identity: Identity) -> Result<Self, RemoteError> {
        let bad = |reason: String| RemoteError::BadServer {
            url: server.to_owned(),
            reason,
        };
        let mut url = Url::parse(server).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("the scheme must be http or https".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment".into()));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            server: url,
            identity,
            owner: None,
            http,
        })
    }

    /// The same client acting for `owner` as its escrow's delegate: every request names the
    /// owner (`?owner=`), and the oracles accept it while the chain says this key holds the
    /// owner's create permission.
    pub fn acting_for(self, owner: alloy_primitives::Address) -> Self {
        let owner = (owner != self.identity.address()).then_some(owner);
        Self { owner, ..self }
    }

    /// The CSP whose objects and escrow the requests are about: the owner acted for, else the
    /// signer.
    pub fn owner(&self) -> alloy_primitives::Address {
        self.owner.unwrap_or_else(|| self.identity.address())
    }

    /// Whether the signer acts for another owner as a delegate.
    pub fn is_delegate(&self) -> bool {
        self.owner.is_some()
    }

    /// The address requests are signed with.
    pub fn address(&self) -> alloy_primitives::Address {
        self.identity.address()
    }

    /// The key requests are signed with (also the CSP's key on chain).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The URL of an API path given as segments (each percent-encoded as needed) and query
    /// pairs, e.g. `["v1", "deeployjobs"]` and `[("namespace", "shop")]`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, RemoteError> {
        let mut url = self.server.clone();
        url.path_segments_mut()
            .map_err(|()| RemoteError::BadServer {
                url: self.server.to_string(),
                reason: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        if let Some(owner) = self.owner {
            url.query_pairs_mut()
                .append_pair("owner", &owner.to_checksum(None));
        }
        Ok(url)
    }

    /// Sends a request signed now.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
    ) -> Result<RawResponse, RemoteError> {
        self.send_at(method, url, body, now_ms()).await
    }

    /// Sends a request signed now and returns the response as it starts, for a body read as it
    /// arrives (a log followed, a command's output).
    pub async fn send_streaming(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, RemoteError> {
        self.signed(method, url, body, now_ms())?
            .send()
            .await
            .map_err(|source| RemoteError::Transport {
                server: self.server.to_string(),
                source,
            })
    }

    /// A request signed as of `timestamp_ms`, ready to send.
    fn signed(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<reqwest::RequestBuilder, RemoteError> {
        // Sign exactly what goes on the wire: the URL's encoded path and query.
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let headers = api_auth::sign(
            &self.identity,
            method.as_str(),
            &path_and_query,
            timestamp_ms,
            &body,
        )?;
        Ok(self
            .http
            .request(method, url)
            .header(api_auth::ADDRESS_HEADER, headers.address)
            .header(api_auth::TIMESTAMP_HEADER, headers.timestamp)
            .header(api_auth::SIGNATURE_HEADER, headers.signature)
            .body(body))
    }

    /// Sends a request signed as of `timestamp_ms`.
    pub async fn send_at(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<RawResponse, RemoteError> {
        let transport = |source| RemoteError::Transport {
            server: self.server.to_string(),
            source,
        };
        let response = self
            .signed(method, url, body, timestamp_ms)?
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(RawResponse { status, body })
    }

    /// The oracle's address and the chain it settles on (`GET /v1/info`, which needs no
    /// signature). Refused with 503 `no_chain` when the oracle runs without a chain.
    pub async fn info(&self) -> Result<ApiInfo, RemoteError> {
        self.get_unsigned(&["v1", "info"]).await
    }

    /// The public keys of the oracles the chain lists now (`GET /v1/oracle-keys`, which needs
    /// no signature), for `r1ctl secret seal`. The answer is not trusted: check each key
    /// against its address before sealing to it ([`crate::secret::oracle_keys`]). Refused with
    /// 503 when the API runs without an oracle.
    pub async fn oracle_keys(&self) -> Result<OracleKeys, RemoteError> {
        self.get_unsigned(&["v1", "oracle-keys"]).await
    }

    /// An unsigned `GET` of an API path, decoded as the other answers are.
    async fn get_unsigned<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, RemoteError> {
        let transport = |source| RemoteError::Transport {
            server: self.server.to_string(),
            source,
        };
        let url = self.url(segments, &[])?;
        let response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        decode(RawResponse { status, body })
    }

    /// The oracle's co-signature of the node link `request` (`POST /v1/licences/attest`),
    /// asked as the licence's owner.
    pub async fn attest_link(
        &self,
        request: &r1_protocol::links::LinkAttestRequest,
    ) -> Result<r1_protocol::links::LinkAttestation, RemoteError> {
        let url = self.url(&["v1", "licences", "attest"], &[])?;
        let body = serde_json::to_vec(request).map_err(|e| RemoteError::Unexpected {
            status: 0,
            text: e.to_string(),
        })?;
        decode(self.send(Method::POST, url, body).await?)
    }

    /// Applies `documents` (YAML or JSON, several documents) as one all-or-nothing set.
    pub async fn apply(&self, documents: &str) -> Result<Vec<Applied>, RemoteError> {
        let url = self.url(&["v1", "apply"], &[])?;
        let response = self
            .send(Method::POST, url, documents.as_bytes().to_vec())
            .await?;
        decode::<ApplyResponse>(response).map(|r| r.applied)
    }

    /// One object with its status.
    pub async fn get(&self, key: &ObjectKey) -> Result<StoredObject, RemoteError> {
        let response = self
            .send(Method::GET, self.object_url(key)?, Vec::new())
            .await?;
        decode(response)
    }

    /// Objects of `kind` in `namespace`, or in every namespace the signer owns.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<Vec<StoredObject>, RemoteError> {
        self.list_selected(kind, namespace, None).await
    }

    /// The same, only the objects whose labels `selector` selects (`kubectl get -l` syntax,
    /// checked by the server).
    pub async fn list_selected(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<StoredObject>, RemoteError> {
        let query: Vec<(&str, &str)> = namespace
            .map(|ns| ("namespace", ns))
            .into_iter()
            .chain(selector.map(|s| ("labelSelector", s)))
            .collect();
        let url = self.url(&["v1", kinds::plural(kind)], &query)?;
        let response = self.send(Method::GET, url, Vec::new()).await?;
        decode::<ListResponse>(response).map(|r| r.items)
    }

    /// Requests deletion of one object.
    pub async fn delete(&self, key: &ObjectKey) -> Result<Deleted, RemoteError> {
        let response = self
            .send(Method::DELETE, self.object_url(key)?, Vec::new())
            .await?;
        decode(response)
    }

    /// The URL of one object.
    pub fn object_url(&self, key: &ObjectKey) -> Result<Url, RemoteError> {
        self.url(
            &["v1", kinds::plural(key.kind), &key.namespace, &key.name],
            &[],
        )
    }
}

pub(crate) fn decode<T: DeserializeOwned>(response: RawResponse) -> Result<T, RemoteError> {
    let unexpected = |text: String| RemoteError::Unexpected {
        status: response.status,
        text,
    };
    if (200..300).contains(&response.status) {
        return serde_json::from_slice(&response.body).map_err(|e| unexpected(e.to_string()));
    }
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) => Err(RemoteError::Refused {
            status: response.status,
            body,
        }),
        Err(_) => Err(unexpected(
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect(),
        )),
    }
}

/// Prints a refusal (every field problem for invalid manifests) and turns it into `false`;
/// other errors pass through.
fn report_refusal<T>(
    result: Result<T, RemoteError>,
    out: &mut dyn Write,
) -> Result<Option<T>, RemoteError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(RemoteError::Refused { body, .. }) => {
            for rejection in &body.errors {
                writeln!(out, "error: {rejection}")?;
            }
            writeln!(out, "error: {}", body.reason)?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `r1ctl apply`: checks `sources` locally, then applies them as one set. Returns whether
/// everything was applied.
pub async fn apply(
    client: &Client,
    sources: &[Source],
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    // References may name objects already on the oracle; the oracle resolves them.
    let report = check_sources(sources, catalogue, References::SyntaxOnly);
    if !report.is_valid() {
        for finding in &report.findings {
            writeln!(out, "error: {finding}")?;
        }
        let errors = r1_crds::api::outcome::count(report.findings.len(), "error");
        writeln!(out, "{errors}; nothing was sent")?;
        return Ok(false);
    }
    if report.resources.is_empty() {
        writeln!(out, "error: no resources in the given files")?;
        return Ok(false);
    }
    let documents = sources
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let Some(applied) = report_refusal(client.apply(&documents).await, out)? else {
        return Ok(false);
    };
    for a in &applied {
        match a.action {
            Action::Configured => writeln!(
                out,
                "{} {}/{} configured (generation {})",
                a.kind, a.namespace, a.name, a.generation
            )?,
            action => writeln!(out, "{} {}/{} {action}", a.kind, a.namespace, a.name)?,
        }
    }
    Ok(true)
}

/// Which namespaces `get` looks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace the signer owns.
    All,
}

/// `r1ctl get`: one object or a list, as a table, YAML or JSON.
pub async fn get(
    client: &Client,
    kind: Kind,
    name: Option<&str>,
    selector: Option<&str>,
    scope: &Scope,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let now = k8s_openapi::jiff::Timestamp::now();
    if name.is_some() && selector.is_some() {
        writeln!(out, "error: a name cannot be given with a label selector")?;
        return Ok(false);
    }
    let objects = match (name, scope) {
        (Some(name), Scope::Namespace(namespace)) => {
            let key = ObjectKey::new(kind, namespace.clone(), name);
            report_refusal(client.get(&key).await.map(|o| vec![o]), out)?
        }
        (Some(_), Scope::All) => {
            writeln!(
                out,
                "error: a name cannot be looked up across all namespaces"
            )?;
            return Ok(false);
        }
        (None, Scope::Namespace(namespace)) => report_refusal(
            client.list_selected(kind, Some(namespace), selector).await,
            out,
        )?,
        (None, Scope::All) => {
            report_refusal(client.list_selected(kind, None, selector).await, out)?
        }
    };
    let Some(objects) = objects else {
        return Ok(false);
    };
    let single = name.is_some();
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            if objects.is_empty() {
                match scope {
                    Scope::Namespace(ns) => writeln!(out, "No resources found in {ns} namespace.")?,
                    Scope::All => writeln!(out, "No resources found.")?,
                }
            } else {
                let wide = format == OutputFormat::Wide;
                let all = *scope == Scope::All;
                print::table(kind, &objects, wide, all, now, out)?;
            }
        }
        OutputFormat::Yaml | OutputFormat::Json => {
            print::document(&objects, single, format, out)?;
        }
    }
    Ok(true)
}

/// `r1ctl describe`: one object in prose, spec and status included.
pub async fn describe(
    client: &Client,
    key: &ObjectKey,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let Some(object) = report_refusal(client.get(key).await, out)? else {
        return Ok(false);
    };
    print::describe(&object, k8s_openapi::jiff::Timestamp::now(), out)?;
    Ok(true)
}

/// `r1ctl delete KIND NAME`: requests deletion of one object.
pub async fn delete(
    client: &Client,
    key: &ObjectKey,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let Some(deleted) = report_refusal(client.delete(key).await, out)? else {
        return Ok(false);
    };
    let what = match deleted.action {
        DeleteAction::Requested => "deletion requested",
        DeleteAction::AlreadyRequested => "deletion already requested",
    };
    writeln!(out, "{key} {what}")?;
    Ok(true)
}

/// `r1ctl delete -f`: requests deletion of every resource in `sources`, jobs first so that
/// the escrows, projects and tunnels they use are free to go. Returns whether all went.
pub async fn delete_sources(
    client: &Client,
    sources: &[Source],
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let report = check_sources(sources, catalogue, References::SyntaxOnly);
    let mut keys: Vec<ObjectKey> = report
        .resources
        .iter()
        .map(|(_, _, manifest)| ObjectKey::of(manifest))
        .collect();
    if keys.is_empty() {
        for finding in &report.findings {
            writeln!(out, "error: {finding}")?;
        }
        writeln!(out, "error: no resources in the given files")?;
        return Ok(false);
    }
    let order = |kind: Kind| Kind::ALL.iter().rev().position(|&k| k == kind);
    keys.sort_by_key(|k| order(k.kind));
    let mut all = true;
    for key in &keys {
        all &= delete(client, key, out).await?;
    }
    Ok(all)
}
