//! The names a resource kind goes by in API paths and on the command line: plural, singular,
//! short name and the `kind:` value, as kubectl accepts them.

use crate::manifest::Kind;

/// The plural used in API paths, e.g. `/v1/deeployjobs`.
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Project => "deeployprojects",
        Kind::Job => "deeployjobs",
        Kind::Tunnel => "tunnels",
        Kind::Escrow => "escrows",
    }
}

/// The short name (`djob`, `dproj`, `tun`, `esc`), as in the CRDs.
pub fn short_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Project => "dproj",
        Kind::Job => "djob",
        Kind::Tunnel => "tun",
        Kind::Escrow => "esc",
    }
}

/// The kind a user or a URL names by plural, singular, short name or `kind:` value, in any
/// case; `None` for anything else.
pub fn parse(text: &str) -> Option<Kind> {
    let lower = text.to_ascii_lowercase();
    Kind::ALL.into_iter().find(|&kind| {
        let singular = kind.as_str().to_ascii_lowercase();
        lower == plural(kind) || lower == short_name(kind) || lower == singular
    })
}

/// Every accepted name, for error messages.
pub fn known() -> String {
    Kind::ALL
        .iter()
        .map(|&k| format!("{} ({})", plural(k), short_name(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses() {
        for kind in Kind::ALL {
            assert_eq!(parse(plural(kind)), Some(kind));
            assert_eq!(parse(short_name(kind)), Some(kind));
            assert_eq!(parse(kind.as_str()), Some(kind));
            assert_eq!(parse(&kind.as_str().to_ascii_lowercase()), Some(kind));
        }
        assert_eq!(parse("DJOB"), Some(Kind::Job));
        assert_eq!(parse("pods"), None);
        assert_eq!(parse(""), None);
        assert!(known().contains("deeployjobs (djob)"));
    }

    /// The names are written twice, here and in each type's `#[kube(...)]` attribute (which
    /// takes only literals): the CRDs a cluster installs must name kinds as the API does.
    #[test]
    fn names_match_the_custom_resource_definitions() {
        use kube::{CustomResourceExt, Resource};

        fn names<R: Resource<DynamicType = ()> + CustomResourceExt>() -> (String, String, String) {
            (
                R::kind(&()).into_owned(),
                R::plural(&()).into_owned(),
                R::shortnames().join(","),
            )
        }
        for kind in Kind::ALL {
            let crd = match kind {
                Kind::Project => names::<crate::DeeployProject>(),
                Kind::Job => names::<crate::DeeployJob>(),
                Kind::Tunnel => names::<crate::Tunnel>(),
                Kind::Escrow => names::<crate::Escrow>(),
            };
            let ours = (
                kind.as_str().to_owned(),
                plural(kind).to_owned(),
                short_name(kind).to_owned(),
            );
            assert_eq!(ours, crd);
        }
    }
}
