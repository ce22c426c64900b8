//! Rules that need the signer or the stored object, beyond what r1-crds validates: a CSP can only
//! name itself as owner, and some fields are fixed once an object exists.

use std::str::FromStr;

use alloy_primitives::Address;
use r1_crds::api::spec::Spec;
use r1_crds::field::FieldError;
use r1_crds::manifest::Manifest;

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

/// Changes to fields that are fixed after creation ([`Spec::fixed_fields`]), each at its path.
pub fn immutable_errors(stored: &Spec, applied: &Spec) -> Vec<FieldError> {
    let kind = stored.kind();
    stored
        .immutable_changes(applied)
        .into_iter()
        .map(|change| {
            FieldError::new(
                format!("spec.{}", change.field),
                format!(
                    "is immutable after creation (was {}, now {}); delete the {kind} and create it again to change it",
                    show(change.before),
                    show(change.after)
                ),
            )
        })
        .collect()
}

fn show(value: Option<String>) -> String {
    value.unwrap_or_else(|| "unset".into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let job = |text: &str| Spec::of(&parse(text));
        let before = job(include_str!("../../../crds/examples/job-http.yaml"));
        let moved = include_str!("../../../crds/examples/job-http.yaml")
            .replace("escrowRef:\n    name: ", "escrowRef:\n    name: other-");
        let errors = immutable_errors(&before, &job(&moved));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.escrowRef");
        assert!(
            errors[0].message.contains("(was ") && errors[0].message.contains(", now other-"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].message.contains("delete the DeeployJob"),
            "{}",
            errors[0]
        );
    }
}
