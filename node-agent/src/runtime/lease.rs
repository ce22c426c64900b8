//! Leases: what an image import writes into containerd (blobs, unpacked layers) is referenced
//! by nothing until the image record is written last, and containerd's garbage collector —
//! which runs just after containerd starts and after every deletion — may take it meanwhile
//! (the import then fails with "snapshot … does not exist"). An import runs under a lease that
//! holds everything it writes until it ends, and that expires by itself if the agent dies
//! holding it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::{CreateRequest, DeleteRequest};

use super::containerd::{Containerd, RuntimeError};

/// The gRPC metadata key containerd reads a request's lease from.
pub(super) const HEADER: &str = "containerd-lease";
/// The lease label containerd's garbage collector expires a lease by.
const EXPIRE_LABEL: &str = "containerd.io/gc.expire";
/// How long a lease outlives an agent that died holding it.
const LIFETIME: Duration = Duration::from_secs(3600);

impl Containerd {
    /// A connection whose requests are made under a new lease; [`Containerd::end_lease`]
    /// releases it once what was written is referenced.
    pub(super) async fn begin_lease(&self) -> Result<Containerd, RuntimeError> {
        let id = format!(
            "r1-import-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let expires = prost_types::Timestamp::from(SystemTime::now() + LIFETIME);
        self.client
            .leases()
            .create(self.request(CreateRequest {
                id: id.clone(),
                labels: HashMap::from([(EXPIRE_LABEL.to_owned(), expires.to_string())]),
            }))
            .await
            .map_err(RuntimeError::rpc("create lease"))?;
        Ok(self.under_lease(Some(id)))
    }

    /// Releases this connection's lease; one that cannot be deleted expires by itself.
    pub(super) async fn end_lease(self) {
        let Some(id) = self.lease.clone() else {
            return;
        };
        let unleased = self.under_lease(None);
        let deleted = unleased
            .client
            .leases()
            .delete(unleased.request(DeleteRequest {
                id: id.clone(),
                sync: false,
            }))
            .await;
        if let Err(status) = deleted {
            tracing::warn!(lease = id, "cannot release an import's lease: {status}");
        }
    }
}
