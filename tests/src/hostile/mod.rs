//! Tools of an outsider attacking a running network with a fresh key and no licence, and the
//! gauges that show whether the network survived: a raw HTTP client that signs (or does not
//! sign) whatever it sends and can replay a signed request byte for byte ([`http`]), an MQTT
//! client that publishes anything under any identity and listens on any filter ([`mqtt`]),
//! generators of hostile payloads ([`payload`]), and each oracle's memory, bytes written and
//! reconcile pass times ([`measure`]).

pub mod http;
pub mod measure;
pub mod mqtt;
pub mod payload;
