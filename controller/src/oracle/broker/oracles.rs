//! The addresses the broker gate treats as oracles: fixed ones (the configured list and the
//! embedding oracle's own address) plus the chain's list, which the oracle replaces whenever it
//! reads the chain.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use r1_protocol::Address;
use r1_protocol::broker_acl::Role;

/// A shared, updatable oracle set; clones share it.
#[derive(Debug, Clone, Default)]
pub struct GateOracles(Arc<RwLock<Sets>>);

#[derive(Debug, Default)]
struct Sets {
    fixed: HashSet<Address>,
    chain: HashSet<Address>,
}

impl GateOracles {
    /// A set that always holds `fixed`.
    pub fn new(fixed: impl IntoIterator<Item = Address>) -> Self {
        Self(Arc::new(RwLock::new(Sets {
            fixed: fixed.into_iter().collect(),
            chain: HashSet::new(),
        })))
    }

    /// Replaces the chain's part of the set with `oracles`; the fixed ones stay.
    pub fn set(&self, oracles: impl IntoIterator<Item = Address>) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).chain =
            oracles.into_iter().collect();
    }

    /// The role of `client`: oracle when it is in the set.
    pub fn role(&self, client: &Address) -> Role {
        let sets = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if sets.fixed.contains(client) || sets.chain.contains(client) {
            Role::Oracle
        } else {
            Role::Node
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_oracles_survive_chain_updates() {
        let (me, a, b) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let oracles = GateOracles::new([me]);
        let shared = oracles.clone();
        assert_eq!(oracles.role(&a), Role::Node);
        shared.set([a]);
        assert_eq!(oracles.role(&a), Role::Oracle);
        shared.set([b]);
        assert_eq!(
            [me, a, b].map(|x| oracles.role(&x)),
            [Role::Oracle, Role::Node, Role::Oracle]
        );
    }
}
