//! Credentials for one registry, from a job's pull secret.

use std::fmt;

use sha2::{Digest, Sha256};

/// What a job's pull secret gives for its image's registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or access token used as a password), sent to the registry's
    /// token service or, when the registry asks for it, to the registry itself.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// A registry identity token, sent as the bearer token of every request.
    Token(String),
}

impl Credentials {
    /// A digest identifying these credentials without holding them, so that a token obtained
    /// with one job's secret is never reused for a request made with another's (or none), and
    /// an image pulled with them is kept apart from workloads without them.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        match self {
            Self::Basic { username, password } => {
                hasher.update(b"basic\0");
                hasher.update(
                    u64::try_from(username.len())
                        .unwrap_or(u64::MAX)
                        .to_be_bytes(),
                );
                hasher.update(username.as_bytes());
                hasher.update(password.as_bytes());
            }
            Self::Token(token) => {
                hasher.update(b"token\0");
                hasher.update(token.as_bytes());
            }
        }
        hasher.finalize().into()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let basic = Credentials::Basic {
            username: "alice".to_owned(),
            password: "hunter2".to_owned(),
        };
        let shown = format!("{basic:?} {:?}", Credentials::Token("t0ps3cret".to_owned()));
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("t0ps3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn fingerprints_tell_credentials_apart() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.to_owned(),
            password: p.to_owned(),
        };
        let all = [
            basic("ab", "c"),
            basic("a", "bc"),
            basic("a", "b"),
            Credentials::Token("abc".to_owned()),
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a.fingerprint() == b.fingerprint(), i == j, "{a:?} {b:?}");
            }
        }
    }
}
