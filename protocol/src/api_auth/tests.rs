use super::*;

const NOW: u64 = 1_790_000_000_000;
const BODY: &[u8] = b"apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: Escrow\n";

fn identity(byte: u8) -> Identity {
    Identity::from_secret(&[byte; 32]).unwrap()
}

fn signed(method: &str, path: &str, ts: u64, body: &[u8]) -> SignedHeaders {
    sign(&identity(1), method, path, ts, body).unwrap()
}

fn check(
    headers: &SignedHeaders,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
) -> Result<Address, AuthError> {
    verify_full(headers, method, path, body, now).map(|v| v.signer)
}

fn verify_full(
    headers: &SignedHeaders,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
) -> Result<Verified, AuthError> {
    verify(
        &Credentials {
            address: Some(&headers.address),
            timestamp: Some(&headers.timestamp),
            signature: Some(&headers.signature),
        },
        method,
        path,
        body,
        now,
    )
}

#[test]
fn signing_text_is_as_documented() {
    let text = signing_text("DELETE", "/v1/djob/shop/web?x=1", 42, b"");
    assert_eq!(
        text,
        "r1.deeploy.v1\nDELETE\n/v1/djob/shop/web?x=1\n42\n0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
}

#[test]
fn a_signed_request_verifies() {
    let h = signed("POST", "/v1/apply", NOW, BODY);
    assert_eq!(h.address, identity(1).address().to_checksum(None));
    assert_eq!(
        check(&h, "POST", "/v1/apply", BODY, NOW),
        Ok(identity(1).address())
    );
    // Lowercase addresses are the same address.
    let lower = SignedHeaders {
        address: h.address.to_lowercase(),
        ..h.clone()
    };
    assert_eq!(
        check(&lower, "POST", "/v1/apply", BODY, NOW),
        Ok(identity(1).address())
    );
}

#[test]
fn every_tampered_part_is_refused() {
    let h = signed("POST", "/v1/apply?dryRun=false", NOW, BODY);
    let path = "/v1/apply?dryRun=false";
    let mismatch = |r: Result<Address, AuthError>| {
        assert!(
            matches!(
                r,
                Err(AuthError::AddressMismatch { .. }) | Err(AuthError::BadSignature)
            ),
            "{r:?}"
        );
    };
    mismatch(check(&h, "PUT", path, BODY, NOW));
    mismatch(check(&h, "POST", "/v1/apply", BODY, NOW));
    mismatch(check(&h, "POST", "/v1/apply?dryRun=true", BODY, NOW));
    mismatch(check(&h, "POST", "/v1/Apply?dryRun=false", BODY, NOW));
    mismatch(check(&h, "POST", path, b"apiVersion: x", NOW));
    mismatch(check(&h, "POST", path, b"", NOW));
    let mut extended = BODY.to_vec();
    extended.push(b'\n');
    mismatch(check(&h, "POST", path, &extended, NOW));
    // Another timestamp in the window.
    let moved = SignedHeaders {
        timestamp: (NOW - 1).to_string(),
        ..h.clone()
    };
    mismatch(check(&moved, "POST", path, BODY, NOW));
    // Claiming to be someone else.
    let other = SignedHeaders {
        address: identity(2).address().to_checksum(None),
        ..h.clone()
    };
    let err = check(&other, "POST", path, BODY, NOW).unwrap_err();
    assert_eq!(
        err,
        AuthError::AddressMismatch {
            claimed: identity(2).address(),
            signer: identity(1).address()
        }
    );
    assert_eq!(err.code(), "address_mismatch");
    // Someone else's signature under our address.
    let forged = SignedHeaders {
        signature: sign(&identity(2), "POST", path, NOW, BODY)
            .unwrap()
            .signature,
        ..h.clone()
    };
    mismatch(check(&forged, "POST", path, BODY, NOW));
    // A flipped bit in r or s.
    for position in [2, 40, 100] {
        let mut chars: Vec<char> = h.signature.chars().collect();
        chars[position] = if chars[position] == '0' { '1' } else { '0' };
        let flipped = SignedHeaders {
            signature: chars.into_iter().collect(),
            ..h.clone()
        };
        mismatch(check(&flipped, "POST", path, BODY, NOW));
    }
}

#[test]
fn malformed_and_missing_headers_are_refused() {
    let h = signed("GET", "/v1/djob", NOW, b"");
    let with = |f: &dyn Fn(&mut SignedHeaders)| {
        let mut copy = h.clone();
        f(&mut copy);
        check(&copy, "GET", "/v1/djob", b"", NOW).unwrap_err()
    };
    let malformed = |header| move |e: AuthError| matches!(e, AuthError::Malformed { header: h, .. } if h == header);
    assert!(malformed(SIGNATURE_HEADER)(with(
        &|h| h.signature = h.signature.to_uppercase().replace("0X", "0x")
    )));
    assert!(malformed(SIGNATURE_HEADER)(with(&|h| h
        .signature
        .truncate(100))));
    assert!(malformed(SIGNATURE_HEADER)(with(
        &|h| h.signature = h.signature.trim_start_matches("0x").to_owned()
    )));
    // v rewritten to 0/1 (the other accepted form elsewhere) is refused here.
    assert!(malformed(SIGNATURE_HEADER)(with(&|h| {
        let v = if h.signature.ends_with("1b") {
            "00"
        } else {
            "01"
        };
        h.signature.replace_range(130.., v);
    })));
    assert!(malformed(TIMESTAMP_HEADER)(with(
        &|h| h.timestamp = format!("+{}", h.timestamp)
    )));
    assert!(malformed(TIMESTAMP_HEADER)(with(
        &|h| h.timestamp = "soon".into()
    )));
    assert!(malformed(TIMESTAMP_HEADER)(with(
        &|h| h.timestamp = String::new()
    )));
    assert!(malformed(TIMESTAMP_HEADER)(with(
        &|h| h.timestamp = "99999999999999999999999".into()
    )));
    assert!(malformed(ADDRESS_HEADER)(with(
        &|h| h.address = "alice".into()
    )));
    assert!(malformed(ADDRESS_HEADER)(with(&|h| h.address.truncate(41))));
    // A checksum that does not match is not silently accepted as another address.
    let err = with(&|h| {
        let upper = h.address.find(char::is_uppercase).unwrap();
        h.address
            .replace_range(upper..=upper, &h.address[upper..=upper].to_lowercase());
    });
    assert!(malformed(ADDRESS_HEADER)(err));

    let full = Credentials {
        address: Some(&h.address),
        timestamp: Some(&h.timestamp),
        signature: Some(&h.signature),
    };
    for (credentials, header) in [
        (
            Credentials {
                address: None,
                ..full
            },
            ADDRESS_HEADER,
        ),
        (
            Credentials {
                timestamp: None,
                ..full
            },
            TIMESTAMP_HEADER,
        ),
        (
            Credentials {
                signature: None,
                ..full
            },
            SIGNATURE_HEADER,
        ),
    ] {
        let err = verify(&credentials, "GET", "/v1/djob", b"", NOW).unwrap_err();
        assert_eq!(err, AuthError::Missing(header));
        assert_eq!(err.code(), "unsigned");
    }
    assert_eq!(
        verify(&Credentials::default(), "GET", "/", b"", NOW),
        Err(AuthError::Missing(ADDRESS_HEADER))
    );
}

#[test]
fn the_time_window_is_enforced() {
    let at = |ts| {
        check(
            &signed("GET", "/v1/esc", ts, b""),
            "GET",
            "/v1/esc",
            b"",
            NOW,
        )
    };
    assert!(at(NOW - MAX_AGE_MS).is_ok());
    assert_eq!(
        at(NOW - MAX_AGE_MS - 1),
        Err(AuthError::Stale {
            age_ms: MAX_AGE_MS + 1
        })
    );
    assert!(matches!(at(0), Err(AuthError::Stale { .. })));
    assert!(at(NOW + MAX_AHEAD_MS).is_ok());
    assert_eq!(
        at(NOW + MAX_AHEAD_MS + 1),
        Err(AuthError::Future {
            ahead_ms: MAX_AHEAD_MS + 1
        })
    );
    assert!(at(NOW).is_ok());
}

#[test]
fn high_s_twins_are_refused() {
    let h = signed("DELETE", "/v1/esc/default/a", NOW, b"");
    let raw: [u8; 65] = crate::hex::decode(&h.signature).unwrap();
    let signature = Signature::from_raw_array(&raw).unwrap();
    let order = alloy_primitives::U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let twin = Signature::new(signature.r(), order - signature.s(), !signature.v());
    // The twin recovers to the same key…
    let text = signing_text("DELETE", "/v1/esc/default/a", NOW, b"");
    assert_eq!(
        twin.recover_address_from_msg(text.as_bytes()).unwrap(),
        identity(1).address()
    );
    // …but is not accepted as a second form of the same request.
    let twin = SignedHeaders {
        signature: crate::hex::encode(&twin.as_bytes()),
        ..h.clone()
    };
    let err = check(&twin, "DELETE", "/v1/esc/default/a", b"", NOW).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Malformed {
                header: SIGNATURE_HEADER,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("EIP-2"), "{err}");
}

#[test]
fn replays_are_refused_within_the_window() {
    let guard = ReplayGuard::default();
    let request = |who: u8, ts: u64, path: &str| {
        let h = sign(&identity(who), "DELETE", path, ts, b"").unwrap();
        verify_full(&h, "DELETE", path, b"", NOW).unwrap()
    };
    let a = request(1, NOW, "/v1/esc/default/a");
    assert!(guard.first_use(&a, NOW).is_ok());
    assert_eq!(guard.first_use(&a, NOW + 10), Err(AuthError::Replayed));
    // Signing the same request again gives the same identity: still a replay.
    assert_eq!(
        guard.first_use(&request(1, NOW, "/v1/esc/default/a"), NOW + 10),
        Err(AuthError::Replayed)
    );
    assert!(
        guard
            .first_use(&request(1, NOW, "/v1/esc/default/b"), NOW + 10)
            .is_ok()
    );
    assert!(
        guard
            .first_use(&request(1, NOW + 1, "/v1/esc/default/a"), NOW + 10)
            .is_ok()
    );
    assert!(
        guard
            .first_use(&request(2, NOW, "/v1/esc/default/a"), NOW + 10)
            .is_ok()
    );
    assert_eq!(guard.len(), 4);
    // Old entries are forgotten once no request that old can pass the time check.
    let late = Verified {
        timestamp_ms: NOW + 2 * MAX_AGE_MS,
        ..a
    };
    assert!(guard.first_use(&late, NOW + 2 * MAX_AGE_MS).is_ok());
    assert_eq!(guard.len(), 1);
    assert!(!guard.is_empty());
}
