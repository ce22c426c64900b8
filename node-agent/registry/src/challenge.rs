//! `WWW-Authenticate` challenges (RFC 9110, section 11.6.1): an authentication scheme and its
//! `name=value` parameters, values bare tokens or quoted strings with `\` escapes (commas
//! inside quotes included), several challenges in one header separated by commas. The
//! `token68` form (`Negotiate abc==`) is not understood; registries do not send it.

/// One challenge a registry answered 401 with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme, lowercased (`bearer`, `basic`).
    pub(crate) scheme: String,
    /// The parameters in the order given, names lowercased.
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The first value of parameter `name` (lowercase).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header is not a list of challenges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed WWW-Authenticate header at byte {at}: {reason}")]
pub(crate) struct Malformed {
    /// Where parsing stopped.
    pub(crate) at: usize,
    /// What was expected there.
    pub(crate) reason: &'static str,
}

/// Parses every challenge in `header`.
pub(crate) fn parse(header: &str) -> Result<Vec<Challenge>, Malformed> {
    let mut cursor = Cursor {
        bytes: header.as_bytes(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        cursor.skip_separators();
        if cursor.peek().is_none() {
            return Ok(challenges);
        }
        let scheme = cursor
            .token()
            .ok_or(cursor.fail("expected an authentication scheme"))?;
        let params = if cursor.skip_spaces() {
            cursor.params()?
        } else {
            Vec::new()
        };
        // Parameters end at the next challenge's scheme; a scheme alone ends at a comma.
        if params.is_empty() && !matches!(cursor.peek(), None | Some(b',')) {
            return Err(cursor.fail("expected ',' or the end"));
        }
        challenges.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
}

/// A position in the header being parsed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn fail(&self, reason: &'static str) -> Malformed {
        Malformed {
            at: self.pos,
            reason,
        }
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips list separators: commas and whitespace.
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    /// A token (RFC 9110 `tchar`s), if one starts here.
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let token = self.bytes.get(start..self.pos)?;
        (!token.is_empty()).then(|| String::from_utf8_lossy(token).into_owned())
    }

    /// `name=value` parameters separated by commas, up to the end or to the next challenge (a
    /// token not followed by `=`).
    fn params(&mut self) -> Result<Vec<(String, String)>, Malformed> {
        let mut params = Vec::new();
        loop {
            let start = self.pos;
            let Some(name) = self.token() else {
                return Ok(params);
            };
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                self.pos = start;
                return Ok(params);
            }
            self.pos += 1;
            self.skip_spaces();
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                self.token()
                    .ok_or(self.fail("expected a parameter value"))?
            };
            params.push((name.to_ascii_lowercase(), value));
            self.skip_spaces();
            match self.peek() {
                None => return Ok(params),
                Some(b',') => self.skip_separators(),
                Some(_) => return Err(self.fail("expected ',' after a parameter")),
            }
        }
    }

    /// A quoted string starting here, unescaped.
    fn quoted(&mut self) -> Result<String, Malformed> {
        let open = self.pos;
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(Malformed {
                        at: open,
                        reason: "unterminated quoted string",
                    });
                }
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(value)
                        .map_err(|_| self.fail("quoted string is not UTF-8"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self
                        .peek()
                        .ok_or(self.fail("escape at the end of the header"))?;
                    value.push(escaped);
                    self.pos += 1;
                }
                Some(byte) => {
                    value.push(byte);
                    self.pos += 1;
                }
            }
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn challenge(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn docker_hub_bearer() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        let parsed = parse(header).unwrap();
        assert_eq!(
            parsed,
            [challenge(
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/nginx:pull"),
                ]
            )]
        );
        assert_eq!(parsed[0].param("service"), Some("registry.docker.io"));
        assert_eq!(parsed[0].param("error"), None);
    }

    #[test]
    fn quotes_escapes_spaces_and_several_challenges() {
        let header = r#"Basic realm="a, \"b\" \\ c" , BEARER Realm = tok , Scope="x,y",error=insufficient_scope, Negotiate"#;
        assert_eq!(
            parse(header).unwrap(),
            [
                challenge("basic", &[("realm", r#"a, "b" \ c"#)]),
                challenge(
                    "bearer",
                    &[
                        ("realm", "tok"),
                        ("scope", "x,y"),
                        ("error", "insufficient_scope")
                    ]
                ),
                challenge("negotiate", &[]),
            ]
        );
        assert_eq!(
            parse("Basic, Bearer realm=x").unwrap(),
            [
                challenge("basic", &[]),
                challenge("bearer", &[("realm", "x")])
            ]
        );
        assert_eq!(parse(" , ").unwrap(), []);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            r#"Bearer realm="unterminated"#,
            r#"Bearer realm="x\"#,
            "Bearer realm=",
            "Bearer realm=a b=c",
            "Bearer realm=\"a\"b",
            "=x",
            "Bearer realm=x;y",
            "Negotiate abc==",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    /// A value written the way a server might: a bare token when it is one, else quoted.
    fn render(value: &str, quote: bool) -> String {
        if !quote && !value.is_empty() && value.bytes().all(is_tchar) {
            return value.to_owned();
        }
        let escaped = value.replace('\\', r"\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }

    proptest! {
        #[test]
        fn never_panics(header in "\\PC*") {
            let _ = parse(&header);
        }

        #[test]
        fn rendered_challenges_parse_back(
            challenges in prop::collection::vec(
                (
                    "[A-Za-z][A-Za-z0-9._-]{0,8}",
                    prop::collection::vec(("[a-z][a-z_]{0,6}", "\\PC{0,12}", any::<bool>()), 0..4),
                ),
                1..3,
            ),
            spaced in any::<bool>(),
        ) {
            let separator = if spaced { " , " } else { "," };
            let header = challenges
                .iter()
                .map(|(scheme, params)| {
                    let params: Vec<String> = params
                        .iter()
                        .map(|(name, value, quote)| format!("{name}={}", render(value, *quote)))
                        .collect();
                    if params.is_empty() {
                        scheme.clone()
                    } else {
                        format!("{scheme} {}", params.join(separator))
                    }
                })
                .collect::<Vec<_>>()
                .join(separator);
            let expected: Vec<Challenge> = challenges
                .iter()
                .map(|(scheme, params)| Challenge {
                    scheme: scheme.to_ascii_lowercase(),
                    params: params.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect(),
                })
                .collect();
            prop_assert_eq!(parse(&header), Ok(expected), "{}", header);
        }
    }
}
