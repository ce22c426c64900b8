//! Hostile payloads: floods of small manifests, YAML whose aliases expand to far more than its
//! size, and heartbeats of nodes no chain knows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use r1_protocol::Address;
use r1_protocol::messages::{
    Heartbeat, NodeResources, Resources, WorkloadId, WorkloadReport, WorkloadState,
};

/// `apiVersion` of every r1 manifest.
pub const API_VERSION: &str = "deeploy.ratio1.ai/v1alpha1";

/// One small `DeeployProject` owned by `owner`.
pub fn project(owner: Address, namespace: &str, name: &str, description: &str) -> String {
    format!(
        "---\napiVersion: {API_VERSION}\nkind: DeeployProject\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{owner: \"{}\", description: \"{description}\"}}\n",
        owner.to_checksum(None)
    )
}

/// `count` small projects `<prefix>0000`, `<prefix>0001`, … in `namespace`, as one text (about
/// 160 bytes each).
pub fn projects(owner: Address, namespace: &str, prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| project(owner, namespace, &format!("{prefix}{i:04}"), "x"))
        .collect()
}

/// A project-shaped document of about `bytes` bytes whose aliases expand to about
/// `10^levels` copies of a string of 40 % of its size: the rest is a list of small items, which
/// raises the parser's repetition allowance (a multiple of the document's events) so that the
/// whole expansion is allowed. At 15 KB and 5 levels that is some 600 MB.
pub fn wide_laughs(owner: Address, bytes: usize, levels: u32) -> String {
    let string = "lol".repeat(bytes * 2 / 5 / 3);
    let filler = vec!["0"; bytes * 3 / 5 / 2].join(",");
    let mut text = format!(
        "apiVersion: {API_VERSION}\nkind: DeeployProject\nmetadata: {{name: laughs}}\n\
         spec: {{owner: \"{}\"}}\nfiller: [{filler}]\nl0: &l0 \"{string}\"\n",
        owner.to_checksum(None)
    );
    for level in 1..=levels {
        let aliases = vec![format!("*l{}", level - 1); 10].join(",");
        let _ = writeln!(text, "l{level}: &l{level} [{aliases}]");
    }
    text
}

/// The classic billion laughs: nine levels of ten aliases each over a three-byte string, under
/// 1 KB.
pub fn classic_laughs(owner: Address) -> String {
    let mut text = format!(
        "apiVersion: {API_VERSION}\nkind: DeeployProject\nmetadata: {{name: lol}}\n\
         spec: {{owner: \"{}\"}}\nl0: &l0 \"lol\"\n",
        owner.to_checksum(None)
    );
    for level in 1..=9 {
        let aliases = vec![format!("*l{}", level - 1); 10].join(",");
        let _ = writeln!(text, "l{level}: &l{level} [{aliases}]");
    }
    text
}

/// A heartbeat with plenty of free capacity, claiming `workloads` run (and are healthy).
pub fn heartbeat(alias: &str, workloads: Vec<WorkloadReport>) -> Heartbeat {
    const GIB: u64 = 1 << 30;
    Heartbeat {
        alias: alias.to_owned(),
        interval_ms: 10_000,
        p2p_addrs: Vec::new(),
        version: "0.1.0".into(),
        uptime_s: 3600,
        resources: NodeResources {
            total: Resources {
                cpu_millis: 64_000,
                memory_bytes: 256 * GIB,
                disk_bytes: 4096 * GIB,
                gpu: 0,
            },
            free: Resources {
                cpu_millis: 64_000,
                memory_bytes: 256 * GIB,
                disk_bytes: 4096 * GIB,
                gpu: 0,
            },
            gpu_model: None,
        },
        labels: BTreeMap::from([("kyb".to_owned(), "true".to_owned())]),
        workloads,
        retired_logs: vec![],
    }
}

/// A report of replica `replica` of `job` at `revision`, running and healthy.
pub fn running(job: u64, replica: u32, revision: &str) -> WorkloadReport {
    WorkloadReport {
        id: WorkloadId { job, replica },
        revision: revision.to_owned(),
        state: WorkloadState::Running,
        image_digest: None,
        ports: Vec::new(),
        healthy: Some(true),
        tunnel: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_sizes_their_attacks_need() {
        let owner = Address::repeat_byte(0x11);
        let flood = projects(owner, "flood", "p", 1000);
        assert!((140_000..200_000).contains(&flood.len()), "{}", flood.len());
        let wide = wide_laughs(owner, 15_000, 5);
        assert!((13_000..17_000).contains(&wide.len()), "{}", wide.len());
        assert!(classic_laughs(owner).len() < 1024);
    }
}
