//! A resource's desired state as its typed struct, tagged by kind: what the store keeps, what
//! an apply compares, and what the reconcilers read, with no field looked up by name.

use serde_json::Value;

use crate::manifest::{Kind, Manifest};
use crate::{DeeployJobSpec, DeeployProjectSpec, EscrowSpec, TunnelSpec};

/// The `spec` of one r1 resource.
///
/// Equality is by typed value, so a default written out in a manifest (`nodeSelector: {}`)
/// equals one left out: both read as the same struct.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// A `DeeployProject`'s.
    Project(DeeployProjectSpec),
    /// A `DeeployJob`'s.
    Job(Box<DeeployJobSpec>),
    /// A `Tunnel`'s.
    Tunnel(TunnelSpec),
    /// An `Escrow`'s.
    Escrow(EscrowSpec),
}

/// A field fixed at creation that an apply would change, with both values as users write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableChange {
    /// The field, as named in manifests (`projectRef`, `owner`, …).
    pub field: &'static str,
    /// The stored value, `None` when unset.
    pub before: Option<String>,
    /// The applied value, `None` when unset.
    pub after: Option<String>,
}

impl Spec {
    /// The spec of a parsed manifest.
    pub fn of(manifest: &Manifest) -> Self {
        match manifest {
            Manifest::Project(r) => Self::Project(r.spec.clone()),
            Manifest::Job(r) => Self::Job(Box::new(r.spec.clone())),
            Manifest::Tunnel(r) => Self::Tunnel(r.spec.clone()),
            Manifest::Escrow(r) => Self::Escrow(r.spec.clone()),
        }
    }

    /// A `kind`'s spec from its JSON form, as the store reads it back.
    pub fn from_json(kind: Kind, json: Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            Kind::Project => Self::Project(serde_json::from_value(json)?),
            Kind::Job => Self::Job(Box::new(serde_json::from_value(json)?)),
            Kind::Tunnel => Self::Tunnel(serde_json::from_value(json)?),
            Kind::Escrow => Self::Escrow(serde_json::from_value(json)?),
        })
    }

    /// The JSON form, as the API returns it and the store writes it.
    pub fn to_json(&self) -> Value {
        let written = match self {
            Self::Project(s) => serde_json::to_value(s),
            Self::Job(s) => serde_json::to_value(s),
            Self::Tunnel(s) => serde_json::to_value(s),
            Self::Escrow(s) => serde_json::to_value(s),
        };
        // The spec structs hold strings, numbers, maps with string keys and quantities, all of
        // which serde_json writes without fail.
        written.unwrap_or(Value::Null)
    }

    /// The kind this spec belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Project(_) => Kind::Project,
            Self::Job(_) => Kind::Job,
            Self::Tunnel(_) => Kind::Tunnel,
            Self::Escrow(_) => Kind::Escrow,
        }
    }

    /// The job's spec, `None` for other kinds.
    pub fn job(&self) -> Option<&DeeployJobSpec> {
        match self {
            Self::Job(spec) => Some(spec),
            _ => None,
        }
    }

    /// The tunnel spec, when this is a tunnel.
    pub fn tunnel(&self) -> Option<&crate::TunnelSpec> {
        match self {
            Self::Tunnel(spec) => Some(spec),
            _ => None,
        }
    }

    /// The project's spec, `None` for other kinds.
    pub fn project(&self) -> Option<&DeeployProjectSpec> {
        match self {
            Self::Project(spec) => Some(spec),
            _ => None,
        }
    }

    /// The escrow's spec, `None` for other kinds.
    pub fn escrow(&self) -> Option<&EscrowSpec> {
        match self {
            Self::Escrow(spec) => Some(spec),
            _ => None,
        }
    }

    /// The fields that cannot change once the object exists, with their values: a job stays in
    /// its project, paid by its escrow, priced as its type; an escrow stays on its chain, with
    /// its owner and contract; a project keeps its owner. Addresses are lower-cased, so a
    /// different checksum spelling is no change.
    pub fn fixed_fields(&self) -> Vec<(&'static str, Option<String>)> {
        let address = |text: &str| Some(text.to_ascii_lowercase());
        match self {
            Self::Job(s) => vec![
                ("projectRef", Some(s.project_ref.name.clone())),
                ("escrowRef", Some(s.escrow_ref.name.clone())),
                ("type", Some(s.job_type.as_str().to_owned())),
            ],
            Self::Escrow(s) => vec![
                ("chainId", Some(s.chain_id.to_string())),
                ("owner", address(&s.owner)),
                ("address", s.address.as_deref().and_then(address)),
            ],
            Self::Project(s) => vec![("owner", address(&s.owner))],
            Self::Tunnel(_) => Vec::new(),
        }
    }

    /// What `applied` would change among this spec's [fixed fields](Self::fixed_fields).
    pub fn immutable_changes(&self, applied: &Spec) -> Vec<ImmutableChange> {
        let after = applied.fixed_fields();
        self.fixed_fields()
            .into_iter()
            .filter_map(|(field, before)| {
                let after = after
                    .iter()
                    .find(|(name, _)| *name == field)
                    .and_then(|(_, value)| value.clone());
                (before != after).then_some(ImmutableChange {
                    field,
                    before,
                    after,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = include_str!("../../examples/job-http.yaml");
    const ESCROW: &str = include_str!("../../examples/escrow.yaml");

    fn spec(text: &str) -> Spec {
        Spec::of(
            &crate::manifest::parse_documents(text)
                .remove(0)
                .result
                .unwrap(),
        )
    }

    #[test]
    fn json_round_trip_keeps_the_kind_and_the_value() {
        for text in [JOB, ESCROW, include_str!("../../examples/tunnel.yaml")] {
            let spec = spec(text);
            assert_eq!(Spec::from_json(spec.kind(), spec.to_json()).unwrap(), spec);
        }
        let job = spec(JOB);
        assert!(Spec::from_json(Kind::Escrow, job.to_json()).is_err());
        assert_eq!(job.job().unwrap().replicas, 2);
        assert!(job.escrow().is_none() && job.project().is_none());
    }

    #[test]
    fn only_fixed_fields_count_as_immutable_changes() {
        let job = spec(JOB);
        let rescaled = spec(&JOB.replace("replicas: 2", "replicas: 3"));
        assert!(job.immutable_changes(&rescaled).is_empty());
        let retyped = spec(&JOB.replace("type: container", "type: service"));
        assert_eq!(
            job.immutable_changes(&retyped),
            [ImmutableChange {
                field: "type",
                before: Some("container".into()),
                after: Some("service".into()),
            }]
        );
    }

    #[test]
    fn an_address_in_another_case_is_no_change_but_a_new_one_is() {
        let escrow = spec(ESCROW);
        let owner = escrow.escrow().unwrap().owner.clone();
        let lower = spec(&ESCROW.replace(&owner, &owner.to_ascii_lowercase()));
        assert!(escrow.immutable_changes(&lower).is_empty());
        let attached = spec(&format!(
            "{}\n  address: \"0x{}\"\n",
            ESCROW.trim_end(),
            "11".repeat(20)
        ));
        let changes = escrow.immutable_changes(&attached);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].field, changes[0].before.as_deref()),
            ("address", None)
        );
    }
}
