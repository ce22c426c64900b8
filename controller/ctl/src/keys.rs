//! `r1ctl keys`: create a node, oracle or CSP key file, or show the address of one.

use std::path::Path;

use r1_protocol::keyfile::{self, KeyFileError};

/// Creates a key file at `path` (mode 0600) and returns its address, checksummed.
pub fn new(path: &Path) -> Result<String, KeyFileError> {
    keyfile::create(path).map(|identity| identity.address().to_checksum(None))
}

/// The checksummed address of the key at `path`.
pub fn show(path: &Path) -> Result<String, KeyFileError> {
    keyfile::load(path).map(|identity| identity.address().to_checksum(None))
}
