//! `sha256:` content digests: the only algorithm accepted, checked strictly so that one
//! content has exactly one digest string.

use r1_protocol::hex;
use r1_protocol::image_ref::ImageRefError;
use sha2::{Digest, Sha256};

/// The one algorithm prefix accepted.
const PREFIX: &str = "sha256:";

/// Refuses anything but `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn check(digest: &str) -> Result<(), ImageRefError> {
    let fail = |reason| ImageRefError {
        reference: digest.to_owned(),
        reason,
    };
    let Some(hex) = digest.strip_prefix(PREFIX) else {
        return Err(fail("only sha256 digests are supported"));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(fail("a sha256 digest is 64 lowercase hex digits"));
    }
    Ok(())
}

/// The digest of `bytes`.
pub(crate) fn of(bytes: &[u8]) -> String {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    hasher.finish()
}

/// A digest computed over bytes as they arrive.
#[derive(Default)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    /// Adds the next bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub(crate) fn finish(self) -> String {
        format!("{PREFIX}{}", hex::encode_bare(&self.0.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_checks() {
        let empty = of(b"");
        assert_eq!(
            empty,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(check(&empty).is_ok());
        let upper = empty.to_uppercase().replace("SHA256", "sha256");
        for bad in [
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0",
            upper.as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:../../etc/passwd",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        let other = check("sha512:00").map_err(|e| e.to_string());
        assert!(
            other.is_err_and(|e| e.contains("only sha256")),
            "other algorithms get a clear error"
        );
    }
}
