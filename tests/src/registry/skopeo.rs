//! Pushing OCI archives into a [`super::LocalRegistry`] with skopeo.

use std::path::Path;
use std::process::Command;

use super::RegistryError;

/// What one `skopeo copy` into the registry needs.
pub(super) struct Push<'a> {
    /// The OCI archive, as written by `OciImageBuilder::write_archive`.
    pub archive: &'a Path,
    /// The image's `org.opencontainers.image.ref.name` inside the archive.
    pub name: &'a str,
    /// `HOST/REPOSITORY:TAG` in the registry.
    pub destination: String,
    /// `user:password`, or `None` to push anonymously.
    pub credentials: Option<String>,
    /// Where skopeo writes the digest of the pushed manifest.
    pub digest_file: &'a Path,
}

impl Push<'_> {
    /// Runs `skopeo copy` and returns the pushed manifest's digest.
    ///
    /// Digests are preserved (layers are not recompressed), so the registry holds exactly the
    /// archive's blobs and the digests `ImageInfo` lists name them.
    pub fn run(&self) -> Result<String, RegistryError> {
        let source = format!("oci-archive:{}:{}", self.archive.display(), self.name);
        let mut command = Command::new("skopeo");
        // The machine's policy.json is not this test's business: accept any image.
        command.args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"]);
        command.arg("--dest-tls-verify=false");
        match &self.credentials {
            Some(credentials) => command.args(["--dest-creds", credentials]),
            None => command.arg("--dest-no-creds"),
        };
        command
            .arg("--digestfile")
            .arg(self.digest_file)
            .arg(&source)
            .arg(format!("docker://{}", self.destination));
        run(&mut command, &format!("skopeo copy {source}"))?;
        let digest =
            std::fs::read_to_string(self.digest_file).map_err(|source| RegistryError::Io {
                path: self.digest_file.to_owned(),
                source,
            })?;
        let digest = digest.trim();
        if digest.starts_with("sha256:") {
            Ok(digest.to_owned())
        } else {
            Err(RegistryError::BadDigest(digest.to_owned()))
        }
    }
}

/// Runs `command` to completion; a failure carries its stderr.
fn run(command: &mut Command, what: &str) -> Result<(), RegistryError> {
    let output = command.output().map_err(|source| RegistryError::Spawn {
        what: what.to_owned(),
        source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(RegistryError::Tool {
            what: what.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
