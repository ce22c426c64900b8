//! MQTT client options from a broker URL, the same for every r1 process that talks to the
//! broker (node agents and oracles).

use std::time::Duration;

use rumqttc::MqttOptions;
use url::Url;

/// Seconds between MQTT keep-alive pings: a dead broker is noticed within a few seconds.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Client options for `url` (`mqtt://[user:password@]host[:port]`, port 1883 by default) as
/// `client_id`, with a clean session and packets up to `max_packet_bytes` either way. The error
/// says what is wrong with the URL.
pub fn client_options(
    url: &Url,
    client_id: &str,
    max_packet_bytes: usize,
) -> Result<MqttOptions, String> {
    if url.scheme() != "mqtt" {
        return Err("only mqtt:// is built; TLS (mqtts://) is not built yet".to_owned());
    }
    let host = url.host_str().ok_or_else(|| "no host".to_owned())?;
    let mut options = MqttOptions::new(client_id, host, url.port().unwrap_or(1883));
    options.set_keep_alive(KEEP_ALIVE);
    options.set_clean_session(true);
    options.set_max_packet_size(max_packet_bytes, max_packet_bytes);
    if !url.username().is_empty() {
        options.set_credentials(url.username(), url.password().unwrap_or(""));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_mqtt_urls_are_accepted() {
        let url = Url::parse("mqtt://user:pw@127.0.0.1:1884").unwrap();
        let ok = client_options(&url, "n", 1 << 20).unwrap();
        assert_eq!(ok.broker_address(), ("127.0.0.1".to_string(), 1884));
        let default_port = client_options(&Url::parse("mqtt://broker").unwrap(), "n", 1).unwrap();
        assert_eq!(default_port.broker_address().1, 1883);
        let err = client_options(&Url::parse("mqtts://127.0.0.1").unwrap(), "n", 1).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
    }
}
