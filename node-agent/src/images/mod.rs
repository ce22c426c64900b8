//! Images from registries. A workload's image that is neither in containerd nor in the node's
//! archives is pulled in the background while the workload reports `pulling`:
//!
//! * [`pull`]: one pull, start to end — the manifest (the node's platform picked from an
//!   index), the config and the layers downloaded and verified by [`r1_registry`], then stored
//!   in containerd under the reference the job names (`crate::runtime::images`).
//! * [`from_peers`], [`share`]: blobs taken from peers that hold them or are downloading
//!   them, before the registry, and offered to peers in turn (public images only).
//! * [`puller`]: the pulls in flight, their progress, and failures retried with backoff
//!   (`imagePullBackOff`), asked by the supervisor on each pass.
//! * [`gc`]: the image quota checked before a pull, and pulled images no workload has used
//!   for a while removed.
//! * [`metrics`]: pulls, bytes by source, bytes served to peers, images removed.

pub mod from_peers;
pub mod gc;
pub mod metrics;
pub mod pull;
pub mod puller;
pub mod share;

use r1_registry::Credentials;

/// The name an image is stored under in containerd: the reference itself for a public image;
/// for one pulled with credentials, the reference scoped by their fingerprint, so a workload
/// that lacks those credentials never runs what they pulled (another tenant's private image
/// on the same node).
pub fn stored_name(reference: &str, credentials: Option<&Credentials>) -> String {
    match credentials {
        None => reference.to_owned(),
        Some(credentials) => {
            let scope = r1_protocol::hex::encode_bare(&credentials.fingerprint()[..8]);
            format!("r1-private/{scope}/{reference}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_images_are_stored_apart_per_credentials() {
        let basic = |password: &str| Credentials::Basic {
            username: "acme".into(),
            password: password.into(),
        };
        let image = "ghcr.io/acme/api:1";
        assert_eq!(stored_name(image, None), image);
        let right = stored_name(image, Some(&basic("right")));
        assert!(right.starts_with("r1-private/") && right.ends_with(image));
        assert_ne!(right, stored_name(image, Some(&basic("wrong"))));
        assert_eq!(right, stored_name(image, Some(&basic("right"))));
    }
}
