//! The CustomResourceDefinitions of r1, rendered as the YAML files checked in under `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{DeeployJob, DeeployProject, Escrow, Tunnel};

/// First line of every generated file.
pub const HEADER: &str = "# Generated from the Rust types in crds/src by `cargo run -p r1-crds --bin crdgen`. Do not edit.\n";

/// The four CRDs, in the order they are applied.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    vec![
        Escrow::crd(),
        DeeployProject::crd(),
        Tunnel::crd(),
        DeeployJob::crd(),
    ]
}

/// `(file name, YAML)` for each CRD; the file is named after the CRD (`deeployjobs.deeploy.ratio1.ai.yaml`).
pub fn rendered() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    definitions()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((
                format!("{name}.yaml"),
                format!("{HEADER}{}", serde_yaml::to_string(&crd)?),
            ))
        })
        .collect()
}
