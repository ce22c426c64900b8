//! How much one CSP address may own in an oracle's store: without a bound, one signed key can
//! fill every oracle's disk, since every oracle stores every apply.
//!
//! A set that would take its signer past a quota is refused whole; the HTTP API answers 403
//! `quota_exceeded` (not 429: waiting does not help, deleting does).

use serde::{Deserialize, Serialize};

/// The limits per owner (the address that owns the namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Most objects, of every kind and over all its namespaces, an owner may have.
    pub objects: usize,
    /// Most namespaces an owner may have.
    pub namespaces: usize,
}

impl Default for Quotas {
    /// 500 objects in 20 namespaces: far beyond what a CSP's projects need.
    fn default() -> Self {
        Self {
            objects: 500,
            namespaces: 20,
        }
    }
}

/// What an owner has, or what an apply adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Namespaces.
    pub namespaces: usize,
    /// Objects.
    pub objects: usize,
}

/// An apply that would pass a quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {quota} quota is {limit} per owner: you have {used} and this apply adds {adding}; \
     delete some first"
)]
pub struct Exceeded {
    /// Which quota: `objects` or `namespaces`.
    pub quota: &'static str,
    /// Its limit.
    pub limit: usize,
    /// What the owner has.
    pub used: usize,
    /// What the apply adds.
    pub adding: usize,
}

impl Quotas {
    /// Refuses `adding` to an owner that has `used` when it passes a quota.
    pub fn check(&self, used: Usage, adding: Usage) -> Result<(), Exceeded> {
        let over = |quota, limit: usize, used: usize, adding: usize| {
            (used.saturating_add(adding) > limit).then_some(Exceeded {
                quota,
                limit,
                used,
                adding,
            })
        };
        match over(
            "namespaces",
            self.namespaces,
            used.namespaces,
            adding.namespaces,
        )
        .or_else(|| over("objects", self.objects, used.objects, adding.objects))
        {
            Some(exceeded) => Err(exceeded),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refuse_what_passes_them_and_name_it() {
        let quotas = Quotas {
            objects: 10,
            namespaces: 2,
        };
        let usage = |namespaces, objects| Usage {
            namespaces,
            objects,
        };
        assert_eq!(quotas.check(usage(1, 5), usage(1, 5)), Ok(()));
        let e = quotas.check(usage(1, 5), usage(1, 6)).unwrap_err();
        assert_eq!((e.quota, e.limit, e.used, e.adding), ("objects", 10, 5, 6));
        assert!(
            e.to_string().contains("objects quota is 10 per owner"),
            "{e}"
        );
        let e = quotas.check(usage(2, 0), usage(1, 1)).unwrap_err();
        assert_eq!(e.quota, "namespaces");
    }
}
