//! Objects decoded once: the store keeps the last decoding of each object beside the bytes it
//! came from, so a listing decodes only the objects written since. An oracle lists every job
//! more than once a pass, and decoding a thousand stored jobs cost a quarter of its pass; the
//! decodings are shared, not copied: copying and dropping a thousand jobs a listing had cost
//! an oracle a fifth of its CPU in a burst of applies at 10,000 nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use r1_crds::api::object::StoredObject;

use super::{StoreError, decode_object};

/// Most objects held decoded; past it the cache starts again empty (a guard: objects are
/// bounded by namespace quotas long before).
const MAX_HELD: usize = 200_000;

/// The last decoding of each stored object, by its raw key, with the bytes it was decoded from.
#[derive(Debug, Default)]
pub(super) struct Decoded {
    held: Mutex<HashMap<Box<[u8]>, (Box<[u8]>, Arc<StoredObject>)>>,
}

impl Decoded {
    /// The object stored as `bytes` under `key`: the held decoding when the bytes are the
    /// same, a fresh one (then held) otherwise.
    pub(super) fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<Arc<StoredObject>, StoreError> {
        if let Some((held_bytes, object)) = self.lock().get(key)
            && **held_bytes == *bytes
        {
            return Ok(Arc::clone(object));
        }
        let object = Arc::new(decode_object(key, bytes)?);
        let mut held = self.lock();
        if held.len() >= MAX_HELD {
            held.clear();
        }
        held.insert(key.into(), (bytes.into(), Arc::clone(&object)));
        Ok(object)
    }

    /// Drops what is held for `key` (its object is being removed).
    pub(super) fn forget(&self, key: &[u8]) {
        self.lock().remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, (Box<[u8]>, Arc<StoredObject>)>> {
        // Only a cache: a poisoned lock holds nothing that could be wrong.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many objects are held decoded (for tests).
#[cfg(test)]
impl Decoded {
    pub(super) fn held(&self) -> usize {
        self.lock().len()
    }
}
