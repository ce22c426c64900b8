//! The kubeconfig that points a client (`KUBECONFIG=… r1-oracle`, or `kube::Config`) at the
//! fake API server: plain HTTP on 127.0.0.1 with a static bearer token.

use std::path::{Path, PathBuf};

/// Writes `kubeconfig` into `dir` for a server on 127.0.0.1:`port` taking `token`; returns its
/// path.
pub fn write(dir: &Path, port: u16, token: &str) -> std::io::Result<PathBuf> {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: r1-fake
    cluster:
      server: http://127.0.0.1:{port}
contexts:
  - name: r1-fake
    context:
      cluster: r1-fake
      user: r1-fake
      namespace: default
current-context: r1-fake
users:
  - name: r1-fake
    user:
      token: {token}
preferences: {{}}
"
    );
    std::fs::write(&path, text)?;
    Ok(path)
}
