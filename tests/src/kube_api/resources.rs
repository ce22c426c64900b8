//! The kinds the fake API server serves, all namespaced: r1's four custom resources (taken from
//! the adapter's own API resources, so the two cannot disagree), core `v1` Secrets and
//! `events.k8s.io/v1` Events.

use std::sync::OnceLock;

use r1_controller::kube::resource::api_resource;
use r1_crds::manifest::Kind;

/// One served resource type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group, e.g. `v1alpha1`.
    pub version: String,
    /// Kind, e.g. `DeeployJob`.
    pub kind: String,
    /// Plural name in paths, e.g. `deeployjobs`.
    pub plural: String,
    /// A custom resource with a status subresource: writes to the main resource never change
    /// `.status`, writes to `/status` change nothing else, `.status` is dropped on create and
    /// `metadata.generation` counts changes outside `metadata` and `status`.
    pub custom: bool,
}

impl Resource {
    fn new(group: &str, version: &str, kind: &str, plural: &str, custom: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            custom,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for the core group), as the server names it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether this is the core `Secret` type, whose `stringData` is folded into `data`.
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }
}

/// Every served resource type.
pub fn served() -> &'static [Resource] {
    static SERVED: OnceLock<Vec<Resource>> = OnceLock::new();
    SERVED.get_or_init(|| {
        let mut all: Vec<Resource> = Kind::ALL
            .into_iter()
            .map(|kind| {
                let r = api_resource(kind);
                Resource::new(&r.group, &r.version, &r.kind, &r.plural, true)
            })
            .collect();
        all.push(Resource::new("", "v1", "Secret", "secrets", false));
        all.push(Resource::new(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            false,
        ));
        all
    })
}

/// The resource served at `/apis/{group}/{version}/…/{plural}` (`/api/v1/…` for the core group).
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    served()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource with this plural name (plurals are unique among the served types).
pub fn by_plural(plural: &str) -> Option<&'static Resource> {
    served().iter().find(|r| r.plural == plural)
}

/// The resource of objects of `api_version` and `kind`.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static Resource> {
    served()
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}
