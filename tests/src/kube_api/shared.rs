//! What the HTTP handlers, the watches and the test's handle share: the store behind one lock,
//! a signal that wakes watches after each write, and the log of requests.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::error::ApiError;
use super::store::Store;

/// Most requests the log keeps (the oldest go first).
const LOG_LIMIT: usize = 10_000;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The HTTP method, e.g. `PATCH`.
    pub method: String,
    /// The path, e.g. `/apis/deeploy.ratio1.ai/v1alpha1/namespaces/shop/deeployjobs/web/status`.
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The status code answered (200 for a watch that started).
    pub status: u16,
}

impl RequestRecord {
    /// The value of the query parameter `name`, if given.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// The server's shared state.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    written: watch::Sender<u64>,
    requests: Mutex<VecDeque<RequestRecord>>,
    /// The bearer token every request must carry.
    pub token: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Empty state; requests must carry `token`.
    pub fn new(token: &str) -> Self {
        let store = Store::default();
        let (written, _) = watch::channel(store.revision());
        Self {
            store: Mutex::new(store),
            written,
            requests: Mutex::new(VecDeque::new()),
            token: token.to_owned(),
        }
    }

    /// Reads the store.
    pub fn read<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        read(&lock(&self.store))
    }

    /// Writes to the store, then collects garbage and wakes the watches.
    pub fn write<T>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (result, revision) = {
            let mut store = lock(&self.store);
            let result = write(&mut store);
            store.collect_garbage();
            (result, store.revision())
        };
        self.written.send_replace(revision);
        result
    }

    /// A receiver woken after every write.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Logs an answered request.
    pub fn log(&self, record: RequestRecord) {
        let mut requests = lock(&self.requests);
        if requests.len() >= LOG_LIMIT {
            requests.pop_front();
        }
        requests.push_back(record);
    }

    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.requests).iter().cloned().collect()
    }
}
