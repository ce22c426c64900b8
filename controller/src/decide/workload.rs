//! What a node is told to run for one replica of a job, derived from the job's spec alone, so
//! every oracle sends byte-identical deploy commands and the revision changes exactly when
//! something a node runs changes (not when replicas or duration do).

use std::collections::BTreeMap;

use alloy_primitives::keccak256;
use r1_crds::TunnelSpec;
use r1_crds::common::SealedValue;
use r1_crds::job::{DeeployJobSpec, MAX_REPLICAS, Protocol};
use r1_crds::tunnel::TunnelProvider;
use r1_protocol::messages::{
    HealthCheckSpec, HealthProbe, PortMapping, PortProtocol, SecurityRequest, TunnelClient,
    WorkloadId, WorkloadSpec, WorkloadTunnel,
};

use serde::{Deserialize, Serialize};

use crate::decide::placement::Demand;

// Validation caps a job's replicas (`r1_crds::job::MAX_REPLICAS`) below what a workload id
// numbers per generation.
const _: () = assert!(MAX_REPLICAS < WorkloadId::REPLICA_STRIDE);

/// Why a job spec cannot be turned into a workload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The job has no image (native plugins are not built).
    #[error("spec.image: the job has no container image; native plugin jobs are not built yet")]
    NoImage,
    /// An env var still names a Kubernetes Secret: only a Kubernetes-mode oracle reads them,
    /// and it seals them before the job reaches the store.
    #[error(
        "spec.env[{0}].valueFrom.secretKeyRef: a Kubernetes Secret is read only when the job is applied to a cluster a Kubernetes-mode oracle watches; through the Deeploy API, seal the value with `r1ctl secret seal` and give it as valueFrom.sealed"
    )]
    SecretEnv(usize),
    /// The pull secret still names a Kubernetes Secret (see [`WorkloadError::SecretEnv`]).
    #[error(
        "spec.imagePullSecret.name: a Kubernetes Secret is read only when the job is applied to a cluster a Kubernetes-mode oracle watches; through the Deeploy API, seal the registry config with `r1ctl secret seal --docker-server` and give it as imagePullSecret.sealed"
    )]
    SecretPull,
    /// A quantity does not parse.
    #[error("spec.resources: {0}")]
    Resources(String),
    /// A port is out of range.
    #[error("spec.ports[{0}]: port out of range")]
    Port(usize),
    /// The job's `tunnelRef` names no Tunnel in its namespace.
    #[error("spec.tunnelRef.name: there is no Tunnel {0:?} in the job's namespace")]
    NoTunnel(String),
    /// The tunnel's token still names a Kubernetes Secret (see [`WorkloadError::SecretEnv`]).
    #[error(
        "Tunnel {0}: spec.tokenSecretRef is read only when the tunnel is applied to a cluster a Kubernetes-mode oracle watches; through the Deeploy API, seal the token with `r1ctl secret seal` and give it as spec.sealedToken"
    )]
    SecretTunnel(String),
    /// The tunnel lacks what its provider needs (validation refuses it before this).
    #[error("Tunnel {0}: {1}")]
    Tunnel(String, &'static str),
}

/// A job's secret values as the CSP sealed them to the oracles: what an oracle opens and
/// reseals to each node it deploys a replica on (see `crate::oracle::secrets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedInputs {
    /// Secret env values by variable name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, SealedValue>,
    /// The sealed Docker config holding the image's registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<SealedValue>,
    /// The token of the job's tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_token: Option<SealedValue>,
}

impl SealedInputs {
    /// Whether the job has no secrets.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.registry.is_none() && self.tunnel_token.is_none()
    }
}

/// The tunnel client a replica of a job runs, from the `Tunnel` named `name`; its sealed
/// token goes to `sealed`.
fn tunnel_client(
    name: &str,
    tunnel: &TunnelSpec,
    sealed: &mut SealedInputs,
) -> Result<WorkloadTunnel, WorkloadError> {
    if tunnel.token_secret_ref.is_some() {
        return Err(WorkloadError::SecretTunnel(name.to_owned()));
    }
    sealed.tunnel_token.clone_from(&tunnel.sealed_token);
    let hostname = || {
        tunnel
            .hostname
            .clone()
            .ok_or_else(|| WorkloadError::Tunnel(name.to_owned(), "spec.hostname is missing"))
    };
    let provider = match tunnel.provider {
        TunnelProvider::Cloudflare => TunnelClient::Cloudflare {
            hostname: hostname()?,
        },
        TunnelProvider::Ngrok => TunnelClient::Ngrok {
            hostname: hostname()?,
        },
        TunnelProvider::Bore => {
            let bore = tunnel
                .bore
                .as_ref()
                .ok_or_else(|| WorkloadError::Tunnel(name.to_owned(), "spec.bore is missing"))?;
            TunnelClient::Bore {
                server: bore.server.clone(),
                port: bore.port,
            }
        }
    };
    Ok(WorkloadTunnel {
        name: name.to_owned(),
        provider,
    })
}

/// The node-facing part of one replica, without its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTemplate {
    spec: WorkloadSpec,
    sealed: SealedInputs,
    demand: Demand,
    node_selector: BTreeMap<String, String>,
}

impl WorkloadTemplate {
    /// The template of `spec`, whose `tunnelRef` (if any) names `tunnel`.
    pub fn of(spec: &DeeployJobSpec, tunnel: Option<&TunnelSpec>) -> Result<Self, WorkloadError> {
        let image = spec.image.clone().ok_or(WorkloadError::NoImage)?;
        let mut env = BTreeMap::new();
        let mut sealed = SealedInputs::default();
        for (i, var) in spec.env.iter().enumerate() {
            let from_sealed = var.value_from.as_ref().and_then(|from| from.sealed.clone());
            match (&var.value, from_sealed) {
                (Some(value), _) => {
                    env.insert(var.name.clone(), value.clone());
                }
                (None, Some(value)) => {
                    sealed.env.insert(var.name.clone(), value);
                }
                (None, None) => return Err(WorkloadError::SecretEnv(i)),
            }
        }
        if let Some(pull) = &spec.image_pull_secret {
            sealed.registry = Some(pull.sealed.clone().ok_or(WorkloadError::SecretPull)?);
        }
        let amounts = spec.resources.amounts().map_err(|errors| {
            WorkloadError::Resources(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let mut ports = Vec::with_capacity(spec.ports.len());
        for (i, port) in spec.ports.iter().enumerate() {
            let container_port =
                u16::try_from(port.container_port).map_err(|_| WorkloadError::Port(i))?;
            let host_port = port
                .host_port
                .map(u16::try_from)
                .transpose()
                .map_err(|_| WorkloadError::Port(i))?;
            ports.push(PortMapping {
                container_port,
                host_port,
                protocol: match port.protocol {
                    Protocol::Tcp => PortProtocol::Tcp,
                    Protocol::Udp => PortProtocol::Udp,
                },
            });
        }
        let health = spec.health_check.as_ref().and_then(|check| {
            let probe = if let Some(http) = &check.http {
                HealthProbe::Http {
                    port: u16::try_from(http.port).ok()?,
                    path: http.path.clone(),
                }
            } else if let Some(tcp) = &check.tcp {
                HealthProbe::Tcp {
                    port: u16::try_from(tcp.port).ok()?,
                }
            } else {
                HealthProbe::Exec {
                    command: check.exec.as_ref()?.command.clone(),
                }
            };
            Some(HealthCheckSpec {
                probe,
                initial_delay_s: check.initial_delay_seconds,
                period_s: check.period_seconds.unwrap_or(10),
                failure_threshold: check.failure_threshold.unwrap_or(3),
            })
        });
        let mut workload = WorkloadSpec {
            id: WorkloadId { job: 0, replica: 0 },
            revision: String::new(),
            image,
            command: spec.command.clone(),
            args: spec.args.clone(),
            env,
            ports,
            cpu_millis: amounts.cpu_millis,
            memory_bytes: amounts.memory_bytes,
            gpu: amounts.gpu,
            health,
            secrets: None,
            tunnel: match (&spec.tunnel_ref, tunnel) {
                (Some(named), Some(tunnel)) => {
                    Some(tunnel_client(&named.name, tunnel, &mut sealed)?)
                }
                (Some(named), None) => return Err(WorkloadError::NoTunnel(named.name.clone())),
                (None, _) => None,
            },
            security: spec.security_context.as_ref().map(|asked| SecurityRequest {
                host_users: asked.host_users,
                writable_root_filesystem: asked.writable_root_filesystem,
                no_egress: asked.no_egress,
            }),
        };
        workload.revision = revision(&workload, &sealed);
        let mut node_selector = spec.node_selector.clone();
        for (label, value) in workload
            .security
            .map(|asked| asked.required_labels())
            .unwrap_or_default()
        {
            node_selector.insert(label.to_owned(), value.to_owned());
        }
        Ok(Self {
            spec: workload,
            sealed,
            demand: Demand::from_amounts(&amounts, None),
            node_selector,
        })
    }

    /// The revision every replica of this template carries.
    pub fn revision(&self) -> &str {
        &self.spec.revision
    }

    /// The job's sealed secret values.
    pub fn sealed(&self) -> &SealedInputs {
        &self.sealed
    }

    /// What each replica needs of a node.
    pub fn demand(&self) -> &Demand {
        &self.demand
    }

    /// The labels a node must carry: the job's selector, and the labels of nodes whose
    /// operator allows the less isolation its `securityContext` asks for.
    pub fn node_selector(&self) -> &BTreeMap<String, String> {
        &self.node_selector
    }

    /// What every replica runs; its id is a placeholder that
    /// [`crate::decide::job_rollout::Generation::workload`] fills in.
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }
}

/// First 16 hex digits of keccak256 over the canonical JSON of what the node runs, the sealed
/// secrets included (a secret sealed anew is a new revision, so replicas pick it up).
fn revision(spec: &WorkloadSpec, sealed: &SealedInputs) -> String {
    let mut canonical = serde_json::json!({
        "image": spec.image,
        "command": spec.command,
        "args": spec.args,
        "env": spec.env,
        "ports": spec.ports,
        "cpuMillis": spec.cpu_millis,
        "memoryBytes": spec.memory_bytes,
        "gpu": spec.gpu,
        "health": spec.health,
        "tunnel": spec.tunnel,
        "sealed": sealed,
    });
    if let Some(security) = spec.security {
        canonical["security"] = serde_json::json!(security);
    }
    let hash = keccak256(canonical.to_string().as_bytes());
    r1_protocol::hex::encode_bare(&hash[..8])
}

/// Job specs and templates for the decisions' tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
pub(crate) mod fixtures {
    use r1_crds::job::DeeployJobSpec;
    use r1_crds::manifest::{Manifest, parse_value};

    use super::WorkloadTemplate;

    /// A job spec running `localhost/x:1` on 250m and 128Mi, with `extra` spec lines.
    pub fn job_spec(extra: &str) -> DeeployJobSpec {
        let text = format!(
            "apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: DeeployJob\nmetadata: {{name: j}}\nspec:\n  projectRef: {{name: p}}\n  escrowRef: {{name: e}}\n  image: localhost/x:1\n  resources: {{cpu: 250m, memory: 128Mi}}\n  ports: [{{containerPort: 8080}}]\n  durationEpochs: 30\n{extra}"
        );
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        match parse_value(value).unwrap() {
            Manifest::Job(job) => job.spec,
            other => panic!("not a job: {other:?}"),
        }
    }

    /// The template of a job running `image`, probed over TCP.
    pub fn template(image: &str) -> WorkloadTemplate {
        let mut spec = job_spec("  healthCheck: {tcp: {port: 8080}}\n");
        spec.image = Some(image.into());
        WorkloadTemplate::of(&spec, None).unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::fixtures::job_spec as job;
    use super::*;

    #[test]
    fn a_security_context_reaches_the_node_and_is_a_new_revision() {
        let plain = WorkloadTemplate::of(&job(""), None).unwrap();
        assert_eq!(plain.spec().security, None);
        let asked = job("  securityContext: {writableRootFilesystem: true}\n");
        let asked = WorkloadTemplate::of(&asked, None).unwrap();
        assert_eq!(
            asked.spec().security,
            Some(SecurityRequest {
                host_users: false,
                writable_root_filesystem: true,
                no_egress: false,
            })
        );
        assert_ne!(plain.revision(), asked.revision());
        let closed =
            WorkloadTemplate::of(&job("  securityContext: {noEgress: true}\n"), None).unwrap();
        assert_eq!(closed.spec().security.map(|s| s.no_egress), Some(true));
        assert!(
            closed.node_selector().is_empty(),
            "more isolation needs no node's allowance"
        );
        assert_ne!(plain.revision(), closed.revision());
        assert!(plain.node_selector().is_empty());
        assert_eq!(
            asked
                .node_selector()
                .get(SecurityRequest::WRITABLE_ROOT_LABEL),
            Some(&SecurityRequest::ALLOWED.to_owned()),
            "placed only on nodes that allow it"
        );
    }

    #[test]
    fn replicas_and_duration_do_not_change_the_revision_but_the_image_does() {
        let base = WorkloadTemplate::of(&job("  replicas: 1\n"), None).unwrap();
        let mut longer = job("  replicas: 3\n");
        longer.duration_epochs = 60;
        let more = WorkloadTemplate::of(&longer, None).unwrap();
        assert_eq!(base.revision(), more.revision());
        let mut other = job("  replicas: 1\n");
        other.image = Some("localhost/x:2".into());
        assert_ne!(
            base.revision(),
            WorkloadTemplate::of(&other, None).unwrap().revision()
        );
        assert_eq!(base.spec().revision, base.revision());
        assert_eq!(base.spec().cpu_millis, 250);
        assert_eq!(base.spec().memory_bytes, 128 << 20);
        assert_eq!(base.demand().cpu_millis, 250);
    }

    #[test]
    fn sealed_values_stay_out_of_the_env_and_a_new_sealing_is_a_new_revision() {
        let sealed = |copy: &str| {
            job(&format!(
                "  env:\n    - {{name: A, value: a}}\n    - name: B\n      valueFrom: {{sealed: {{\"0x00000000000000000000000000000000000000aa\": \"{copy}\"}}}}\n  imagePullSecret:\n    sealed: {{\"0x00000000000000000000000000000000000000aa\": \"0xbb\"}}\n"
            ))
        };
        let first = WorkloadTemplate::of(&sealed("0x01"), None).unwrap();
        assert_eq!(first.spec().env.keys().collect::<Vec<_>>(), ["A"]);
        assert_eq!(first.sealed().env.keys().collect::<Vec<_>>(), ["B"]);
        assert!(first.sealed().registry.is_some());
        assert!(first.spec().secrets.is_none());
        let again = WorkloadTemplate::of(&sealed("0x01"), None).unwrap();
        assert_eq!(first.revision(), again.revision());
        let resealed = WorkloadTemplate::of(&sealed("0x02"), None).unwrap();
        assert_ne!(first.revision(), resealed.revision());
    }

    #[test]
    fn a_tunnel_reaches_the_workload_and_its_revision() {
        use r1_crds::tunnel::BoreServer;
        let spec = job("  tunnelRef: {name: web}\n");
        assert_eq!(
            WorkloadTemplate::of(&spec, None),
            Err(WorkloadError::NoTunnel("web".into()))
        );
        let bore = |port| TunnelSpec {
            provider: TunnelProvider::Bore,
            token_secret_ref: None,
            sealed_token: None,
            hostname: None,
            bore: Some(BoreServer {
                server: "bore.example.com".into(),
                port,
            }),
        };
        let first = WorkloadTemplate::of(&spec, Some(&bore(Some(4000)))).unwrap();
        assert_eq!(
            first.spec().tunnel,
            Some(WorkloadTunnel {
                name: "web".into(),
                provider: TunnelClient::Bore {
                    server: "bore.example.com".into(),
                    port: Some(4000)
                }
            })
        );
        assert!(first.sealed().is_empty());
        let other = WorkloadTemplate::of(&spec, Some(&bore(Some(4001)))).unwrap();
        assert_ne!(first.revision(), other.revision());
        let mut kube = bore(None);
        kube.token_secret_ref = Some(r1_crds::common::SecretKeyRef {
            name: "s".into(),
            key: "k".into(),
        });
        assert_eq!(
            WorkloadTemplate::of(&spec, Some(&kube)),
            Err(WorkloadError::SecretTunnel("web".into()))
        );
    }

    #[test]
    fn secret_env_is_refused_with_its_field() {
        let spec =
            job("  env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: s, key: k}}\n");
        let err = WorkloadTemplate::of(&spec, None).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.env[0].valueFrom"),
            "{err}"
        );
    }
}
