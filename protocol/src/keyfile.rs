//! Key files: one line, `0x` + 64 hex digits, readable and writable by the owner only.
//!
//! A key file that group or others can read is refused: a leaked node or oracle key lets
//! anyone speak for it on the network and on chain.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::identity::{Identity, IdentityError};

/// Permission bits a key file is created with.
const KEY_FILE_MODE: u32 = 0o600;

/// Why a key file cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file is missing.
    #[error("key file {0} does not exist (create one with `r1ctl keys new --out {0}`)")]
    NotFound(PathBuf),
    /// Refusing to overwrite an existing key.
    #[error("key file {0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
    /// Group or others may access the file.
    #[error(
        "key file {path} is accessible by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not `0x` + 64 lowercase hex digits of a valid key.
    #[error("key file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Creates a new random key at `path` (mode 0600, never overwriting) and returns it.
pub fn create(path: &Path) -> Result<Identity, KeyFileError> {
    let identity = Identity::generate();
    write(path, &identity)?;
    Ok(identity)
}

/// Writes `identity` to a new file at `path` with mode 0600.
pub fn write(path: &Path, identity: &Identity) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_owned()),
            _ => io(e),
        })?;
    // The umask cannot widen 0600, but a pre-set ACL default could; make the mode exact.
    file.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE))
        .map_err(io)?;
    writeln!(file, "{}", crate::hex::encode(&identity.secret())).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the key at `path`, refusing files that group or others can access.
pub fn load(path: &Path) -> Result<Identity, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => KeyFileError::NotFound(path.to_owned()),
        _ => io(e),
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let malformed = |reason: &str| KeyFileError::Malformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let secret = crate::hex::decode::<32>(text.trim_end_matches('\n'))
        .ok_or_else(|| malformed("expected one line of 0x followed by 64 lowercase hex digits"))?;
    Identity::from_secret(&secret).map_err(|e: IdentityError| malformed(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let created = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().address(), created.address());
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
    }

    #[test]
    fn refuses_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load(&path).unwrap_err();
            assert!(
                matches!(err, KeyFileError::TooOpen { mode: m, .. } if m == mode),
                "{mode:o}"
            );
            assert!(err.to_string().contains("chmod 600"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load(&path).is_ok());
    }

    #[test]
    fn refuses_missing_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.key");
        assert!(matches!(load(&path), Err(KeyFileError::NotFound(_))));
        for content in [
            "",
            "hello\n",
            "0x1234\n",
            &format!("0x{}\n", "0".repeat(64)),
        ] {
            let bad = dir.path().join("bad.key");
            let _ = std::fs::remove_file(&bad);
            std::fs::write(&bad, content).unwrap();
            std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                matches!(load(&bad), Err(KeyFileError::Malformed { .. })),
                "{content:?}"
            );
        }
    }
}
