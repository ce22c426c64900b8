//! Rules that need the signer or the stored object, beyond what r1-crds validates: a CSP can only
//! name itself as owner, and some fields are fixed once an object exists.

use std::str::FromStr;

use alloy_primitives::Address;
use r1_crds::field::FieldError;
use r1_crds::manifest::{Kind, Manifest};
use serde_json::Value;

/// `spec.owner` of escrows and projects must be the signer: nobody can lock funds or open
/// projects in someone else's name.
pub fn owner_errors(manifest: &Manifest, signer: Address) -> Vec<FieldError> {
    let Some(owner) = manifest.owner() else {
        return Vec::new();
    };
    match Address::from_str(owner) {
        // A malformed address is reported by validation.
        Err(_) => Vec::new(),
        Ok(owner) if owner == signer => Vec::new(),
        Ok(owner) => vec![FieldError::new(
            "spec.owner",
            format!(
                "{} is not the signer of this request ({}); a CSP can only apply resources it owns",
                owner.to_checksum(None),
                signer.to_checksum(None)
            ),
        )],
    }
}

/// Changes to fields that are fixed after creation ([`Kind::immutable_fields`]), each at its
/// path.
pub fn immutable_errors(kind: Kind, stored: &Value, applied: &Value) -> Vec<FieldError> {
    kind.immutable_fields()
        .iter()
        .filter_map(|&field| {
            let before = stored.get(field).unwrap_or(&Value::Null);
            let after = applied.get(field).unwrap_or(&Value::Null);
            (!same(before, after)).then(|| {
                FieldError::new(
                    format!("spec.{field}"),
                    format!(
                        "is immutable after creation (was {}, now {}); delete the {kind} and create it again to change it",
                        show(before),
                        show(after)
                    ),
                )
            })
        })
        .collect()
}

/// Equal, with addresses compared regardless of checksum case.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        _ => a == b,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "unset".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Manifest {
        r1_crds::manifest::parse_documents(text)
            .remove(0)
            .result
            .unwrap()
    }

    #[test]
    fn owner_must_be_the_signer() {
        let escrow = parse(include_str!("../../../crds/examples/escrow.yaml"));
        let owner = Address::from_str("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
        assert!(owner_errors(&escrow, owner).is_empty());
        let errors = owner_errors(&escrow, Address::repeat_byte(1));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.owner");
        assert!(
            errors[0].message.contains("not the signer"),
            "{}",
            errors[0]
        );
        let job = parse(include_str!("../../../crds/examples/job-http.yaml"));
        assert!(owner_errors(&job, Address::repeat_byte(1)).is_empty());
    }

    #[test]
    fn immutable_fields_are_reported_by_path() {
        let before = json!({"projectRef": {"name": "a"}, "escrowRef": {"name": "e"}, "type": "container", "image": "x"});
        let mut after = before.clone();
        after["image"] = json!("y");
        assert!(immutable_errors(Kind::Job, &before, &after).is_empty());
        after["escrowRef"] = json!({"name": "other"});
        after["type"] = json!("service");
        let errors = immutable_errors(Kind::Job, &before, &after);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.escrowRef", "spec.type"]);
        assert!(
            errors[0].message.contains(r#"was {"name":"e"}"#),
            "{}",
            errors[0]
        );

        let escrow = json!({"chainId": 1, "owner": "0xAbC"});
        assert!(
            immutable_errors(
                Kind::Escrow,
                &escrow,
                &json!({"chainId": 1, "owner": "0xabc"})
            )
            .is_empty()
        );
        let errors = immutable_errors(
            Kind::Escrow,
            &escrow,
            &json!({"chainId": 1, "owner": "0xabc", "address": "0x1"}),
        );
        assert_eq!(errors[0].path, "spec.address");
        assert!(errors[0].message.contains("was unset"), "{}", errors[0]);
        assert!(
            immutable_errors(
                Kind::Tunnel,
                &json!({"hostname": "a"}),
                &json!({"hostname": "b"})
            )
            .is_empty()
        );
    }
}
