//! The MQTT client the test stand-ins (oracles, adversarial peers) share: options from the
//! broker URL as r1's own clients make them (signed login, or the URL's user and password), and
//! an event loop in a thread that signs a fresh login before every reconnection.

use std::time::Duration;

use r1_protocol::Identity;
use r1_protocol::mqtt::client_options;
use rumqttc::{Client, Event};
use url::Url;

use crate::node::NodeHarnessError;

/// A client for `broker_url` (trusting `ca_file` for `mqtts`) as `identity` with `client_id`;
/// every event it receives, or `None` after a failed connection (the loop retries after
/// 100 ms), goes to `on_event` with the client (to subscribe, say), in a thread of its own.
pub fn spawn(
    broker_url: &str,
    ca_file: Option<&std::path::Path>,
    client_id: &str,
    identity: &Identity,
    mut on_event: impl FnMut(&Client, Option<Event>) + Send + 'static,
) -> Result<Client, NodeHarnessError> {
    let url = Url::parse(broker_url)
        .map_err(|e| NodeHarnessError::Broker(format!("{broker_url}: {e}")))?;
    let (options, login) = client_options(&url, ca_file, client_id, identity)
        .map_err(|e| NodeHarnessError::Broker(format!("{broker_url}: {e}")))?;
    let (client, mut connection) = Client::new(options, 64);
    let own = client.clone();
    std::thread::spawn(move || {
        loop {
            match connection.recv() {
                Ok(Ok(event)) => on_event(&own, Some(event)),
                Ok(Err(_)) => {
                    on_event(&own, None);
                    let _ = login.refresh(&mut connection.eventloop.mqtt_options);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => return,
            }
        }
    });
    Ok(client)
}
