//! The node agent's local gRPC API, generated from `proto/node.proto`: the server is in
//! `r1-node`, the clients in `r1ctl node` (`NodeApi`), `r1ctl fs` (`R1fs`) and `r1ctl cstore`
//! (`Cstore`).

#[allow(missing_docs, clippy::all)]
mod generated {
    tonic::include_proto!("r1.node.v1");
}

pub use generated::*;

use std::path::{Path, PathBuf};

use tonic::transport::{Channel, Endpoint};

/// A client of the node API on the unix socket at `path`.
pub async fn connect(
    path: &Path,
) -> Result<node_api_client::NodeApiClient<Channel>, tonic::transport::Error> {
    Ok(node_api_client::NodeApiClient::new(channel(path).await?))
}

/// A client of the node's R1FS API on the unix socket at `path`.
pub async fn connect_r1fs(
    path: &Path,
) -> Result<r1fs_client::R1fsClient<Channel>, tonic::transport::Error> {
    Ok(r1fs_client::R1fsClient::new(channel(path).await?))
}

/// A client of the node's CSTORE API on the unix socket at `path`.
pub async fn connect_cstore(
    path: &Path,
) -> Result<cstore_client::CstoreClient<Channel>, tonic::transport::Error> {
    Ok(cstore_client::CstoreClient::new(channel(path).await?))
}

async fn channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_owned();
    let channel = Endpoint::from_static("http://node.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(channel)
}
