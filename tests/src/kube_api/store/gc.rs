//! The garbage collector, run after every write until it has nothing left to do, following
//! owner references (by uid, within the namespace):
//! * an owner being deleted with the `orphan` finalizer loses its dependents' references to it,
//!   then the finalizer;
//! * an owner being deleted with the `foregroundDeletion` finalizer has every dependent deleted
//!   (in the foreground if the dependent's reference blocks owner deletion), and loses the
//!   finalizer once no dependent whose reference blocks owner deletion is left;
//! * an object none of whose owners exists any more is deleted (in the background).
//!
//! Unlike Kubernetes', it leaves dangling references alone while one owner still exists.

use super::{DeleteOptions, FOREGROUND, Key, ORPHAN, Propagation, Store};
use crate::kube_api::object::{
    drop_owner, finalizers, is_deleting, meta_str, owners, set_finalizers,
};

/// Most actions one collection takes, so a bug cannot loop forever.
const MAX_ACTIONS: usize = 10_000;

/// One step of the collector.
enum Action {
    /// Remove the reference to `owner` from the object under the key.
    Disown(Key, String),
    /// Remove the finalizer from the object under the key.
    Release(Key, &'static str),
    /// Delete the object under the key.
    Delete(Key, Propagation),
}

impl Store {
    /// Collects garbage until nothing is left to do.
    pub fn collect_garbage(&mut self) {
        for _ in 0..MAX_ACTIONS {
            let Some(action) = self.next_action() else {
                return;
            };
            if self.act(action).is_err() {
                return;
            }
        }
    }

    /// The first thing left to do, if any.
    fn next_action(&self) -> Option<Action> {
        for (key, object) in &self.objects {
            if is_deleting(object)
                && let Some(uid) = meta_str(object, "uid")
            {
                let list = finalizers(object);
                let dependents = self.dependents(&key.namespace, uid);
                if list.iter().any(|f| f == ORPHAN) {
                    return Some(match dependents.first() {
                        Some((dependent, _, _)) => {
                            Action::Disown(dependent.clone(), uid.to_owned())
                        }
                        None => Action::Release(key.clone(), ORPHAN),
                    });
                }
                if list.iter().any(|f| f == FOREGROUND) {
                    if let Some((dependent, _, blocks)) =
                        dependents.iter().find(|(_, deleting, _)| !deleting)
                    {
                        let propagation = if *blocks {
                            Propagation::Foreground
                        } else {
                            Propagation::Background
                        };
                        return Some(Action::Delete(dependent.clone(), propagation));
                    }
                    if !dependents.iter().any(|(_, _, blocks)| *blocks) {
                        return Some(Action::Release(key.clone(), FOREGROUND));
                    }
                }
            }
            let references = owners(object);
            if !references.is_empty()
                && !is_deleting(object)
                && references
                    .iter()
                    .all(|(uid, _)| !self.has_uid(&key.namespace, uid))
            {
                return Some(Action::Delete(key.clone(), Propagation::Background));
            }
        }
        None
    }

    /// Does `action`.
    fn act(&mut self, action: Action) -> Result<(), crate::kube_api::ApiError> {
        match action {
            Action::Disown(key, owner) => {
                let live = self.get(&key)?;
                let mut object = live.clone();
                drop_owner(&mut object, &owner);
                self.write(&key, super::Part::Main, live, object)?;
            }
            Action::Release(key, finalizer) => {
                let live = self.get(&key)?;
                let mut object = live.clone();
                let list = finalizers(&live)
                    .into_iter()
                    .filter(|f| f != finalizer)
                    .collect();
                set_finalizers(&mut object, list);
                self.write(&key, super::Part::Main, live, object)?;
            }
            Action::Delete(key, propagation) => {
                let options = DeleteOptions {
                    propagation,
                    ..DeleteOptions::default()
                };
                self.delete(&key, &options)?;
            }
        }
        Ok(())
    }

    /// The objects in `namespace` with a reference to the owner `uid`: their key, whether they
    /// are being deleted, and whether the reference blocks the owner's deletion.
    fn dependents(&self, namespace: &str, uid: &str) -> Vec<(Key, bool, bool)> {
        self.objects
            .iter()
            .filter(|(key, _)| key.namespace == namespace)
            .filter_map(|(key, object)| {
                let (_, blocks) = owners(object).into_iter().find(|(owner, _)| owner == uid)?;
                Some((key.clone(), is_deleting(object), blocks))
            })
            .collect()
    }

    /// Whether an object in `namespace` has this uid.
    fn has_uid(&self, namespace: &str, uid: &str) -> bool {
        self.objects
            .iter()
            .any(|(key, object)| key.namespace == namespace && meta_str(object, "uid") == Some(uid))
    }
}
