//! A client of the OCI distribution API, enough to pull images: manifests and indexes by tag or
//! digest, blobs streamed to files, every byte checked against its digest and size as it
//! arrives. It knows nothing of containerd; the node agent stores what it fetches.
//!
//! * `name`: [`ImageName`], an image reference resolved to a registry, repository and tag or
//!   digest (Docker Hub's defaults applied), and the URLs that address it.
//! * `credentials`: [`Credentials`] from a job's pull secret, never printed.
//! * `config`: [`Config`], the limits and timeouts a node pulls with.
//! * `client`: [`Client`], manifests and blobs with authentication, retries and limits.
//! * `manifest`: [`Manifest`], a fetched manifest or index, and the media types asked for.
//! * `error`: [`RegistryError`], what went wrong and whether trying later may help.
//! * `resolve`: [`resolve_digest`], the digest a tag stands for now (to pin it).
//!
//! Below them: `challenge` parses `WWW-Authenticate` (pure), `auth` answers it (the
//! distribution token flow or Basic) and caches what it got, `backoff` spaces retries,
//! `digest` checks and computes `sha256:` digests, `body` reads bounded response bodies and
//! registry error documents, `status` turns unsuccessful answers into errors, and `transport`
//! is HTTP itself (hyper, rustls on ring, redirects and time limits).

mod auth;
mod backoff;
mod body;
mod challenge;
mod client;
mod config;
mod credentials;
mod digest;
mod error;
mod manifest;
mod name;
mod resolve;
mod status;
mod transport;

#[cfg(test)]
mod fake;

pub use client::Client;
pub use config::Config;
pub use credentials::Credentials;
pub use error::RegistryError;
pub use manifest::Manifest;
pub use name::ImageName;
pub use resolve::resolve_digest;
