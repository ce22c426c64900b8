//! How a CSP's `DeeployJob` resource is linked to the on-chain job that pays for it.
//!
//! Escrow `createJobs` is callable only by the CSP, so the CSP funds its jobs with its own key
//! (`r1ctl fund`) and the oracles, which never hold CSP keys, find the job afterwards: they scan
//! the CSP's escrow for an open job whose `projectHash` is [`project_hash`] of the resource.
//! Both sides must compute it exactly as documented there; changing it unlinks every job.

use alloy::primitives::{Address, B256, keccak256};

/// The `projectHash` of the on-chain job that pays for the `DeeployJob` `namespace/name` owned
/// by `owner` (the CSP whose key signs the resource and owns the escrow).
///
/// It is `keccak256` of the UTF-8 text `r1/deeployjob/{owner}/{namespace}/{name}`, where
/// `{owner}` is the address as `0x` followed by 40 lowercase hex digits (not checksummed).
/// Kubernetes names and namespaces cannot contain `/`, so the text is unambiguous. Example:
/// owner `0x70997970C51812dc3A010C7d01b50e0d17dc79C8`, `default/hello-web` →
/// `0xe57578f48db7ba943f6edd1be80662ccdce9a671ce2af0421f517f5f0a9116e9`.
pub fn project_hash(owner: Address, namespace: &str, name: &str) -> B256 {
    keccak256(project_text(owner, namespace, name).as_bytes())
}

/// The text [`project_hash`] hashes.
fn project_text(owner: Address, namespace: &str, name: &str) -> String {
    let owner = alloy::hex::encode(owner.as_slice());
    format!("r1/deeployjob/0x{owner}/{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSP: Address = alloy::primitives::address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

    #[test]
    fn text_uses_the_lowercase_address() {
        assert_eq!(
            project_text(CSP, "default", "hello-web"),
            "r1/deeployjob/0x70997970c51812dc3a010c7d01b50e0d17dc79c8/default/hello-web"
        );
    }

    #[test]
    fn fixed_vector() {
        // Computed independently with @noble/hashes keccak_256 over the text above.
        assert_eq!(
            project_hash(CSP, "default", "hello-web"),
            alloy::primitives::b256!(
                "0xe57578f48db7ba943f6edd1be80662ccdce9a671ce2af0421f517f5f0a9116e9"
            )
        );
    }

    #[test]
    fn every_part_matters() {
        let base = project_hash(CSP, "default", "hello-web");
        assert_ne!(base, project_hash(CSP, "other", "hello-web"));
        assert_ne!(base, project_hash(CSP, "default", "hello-api"));
        assert_ne!(base, project_hash(Address::ZERO, "default", "hello-web"));
    }
}
