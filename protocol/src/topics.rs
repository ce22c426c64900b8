//! The MQTT topic layout of an r1 network, written down once.
//!
//! Every topic lives under a root (one per network, e.g. `r1/devnet`):
//!
//! | topic | publisher → subscribers | message |
//! |---|---|---|
//! | `{root}/nodes/{node}/heartbeat` | node → oracles | [`Heartbeat`](crate::messages::Heartbeat) |
//! | `{root}/nodes/{node}/status` | node → oracles | [`JobStatusReport`](crate::messages::JobStatusReport) |
//! | `{root}/nodes/{node}/commands` | oracles → node | [`DeployCommand`](crate::messages::DeployCommand), [`StopCommand`](crate::messages::StopCommand), [`SessionOpen`](crate::sessions::SessionOpen), [`SessionInput`](crate::sessions::SessionInput) |
//! | `{root}/nodes/{node}/sessions/{oracle}` | node → the oracle that opened the session | [`SessionOutput`](crate::sessions::SessionOutput) |
//! | `{root}/oracles/{oracle}/observations` | oracle → oracles | [`OracleObservation`](crate::messages::OracleObservation) |
//! | `{root}/oracles/{oracle}/requests` | oracle → oracles | [`RelayedRequest`](crate::messages::RelayedRequest) |
//! | `{root}/oracles/{oracle}/roster` | oracle → nodes | [`Roster`](crate::messages::Roster) |
//!
//! `{node}` and `{oracle}` are lowercase `0x` addresses. A receiver checks that the envelope's
//! sender is the address in the topic, so nobody can publish under another's name. A session's
//! output is addressed to the one oracle that opened it: no other oracle hears (or spends a
//! signature check on) what a CSP's command printed.

use alloy_primitives::Address;

/// One kind of topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `{root}/nodes/{node}/heartbeat`.
    Heartbeat,
    /// `{root}/nodes/{node}/status`.
    Status,
    /// `{root}/nodes/{node}/commands`.
    Commands,
    /// `{root}/oracles/{oracle}/observations`.
    Observations,
    /// `{root}/oracles/{oracle}/requests`.
    Requests,
    /// `{root}/oracles/{oracle}/roster`.
    Roster,
    /// `{root}/oracles/{oracle}/cstore`: CSTORE entries the oracle wrote in the system
    /// namespace (which namespace each job owns, which projects read which), sealed by it.
    Cstore,
    /// `{root}/nodes/{node}/sessions/{oracle}`: output of the logs and exec sessions the node
    /// runs, to the oracle that opened each (see [`Topics::session_output`]).
    Sessions,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 8] = [
        Self::Heartbeat,
        Self::Status,
        Self::Commands,
        Self::Observations,
        Self::Requests,
        Self::Roster,
        Self::Cstore,
        Self::Sessions,
    ];

    fn parts(self) -> (&'static str, &'static str) {
        match self {
            Self::Heartbeat => ("nodes", "heartbeat"),
            Self::Status => ("nodes", "status"),
            Self::Commands => ("nodes", "commands"),
            Self::Observations => ("oracles", "observations"),
            Self::Requests => ("oracles", "requests"),
            Self::Roster => ("oracles", "roster"),
            Self::Cstore => ("oracles", "cstore"),
            Self::Sessions => ("nodes", "sessions"),
        }
    }
}

/// Builds and parses topics under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Topics {
    /// Topics under `root` (no trailing `/`).
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The topic of `channel` for `address` (for [`Channel::Sessions`], the stem of the node's
    /// per-oracle topics, not a topic itself).
    pub fn topic(&self, channel: Channel, address: &Address) -> String {
        let (group, leaf) = channel.parts();
        format!(
            "{}/{group}/{}/{leaf}",
            self.root,
            crate::hex::encode(address.as_slice())
        )
    }

    /// The subscription matching `channel` for every address.
    pub fn all(&self, channel: Channel) -> String {
        let (group, leaf) = channel.parts();
        format!("{}/{group}/+/{leaf}", self.root)
    }

    /// Where `node` publishes the output of a session `oracle` opened.
    pub fn session_output(&self, node: &Address, oracle: &Address) -> String {
        format!(
            "{}/{}",
            self.topic(Channel::Sessions, node),
            crate::hex::encode(oracle.as_slice())
        )
    }

    /// The subscription matching the output of every session `oracle` opened, on any node.
    pub fn session_outputs_to(&self, oracle: &Address) -> String {
        format!(
            "{}/{}",
            self.all(Channel::Sessions),
            crate::hex::encode(oracle.as_slice())
        )
    }

    /// The channel and address of `topic`, when it is one of this root's topics (for a
    /// session's output, the node's address; [`Topics::session_recipient`] gives the oracle's).
    pub fn parse(&self, topic: &str) -> Option<(Channel, Address)> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (group, address, leaf) = (parts.next()?, parts.next()?, parts.next()?);
        let channel = Channel::ALL
            .into_iter()
            .find(|c| c.parts() == (group, leaf))?;
        let recipient = parts.next();
        if parts.next().is_some() || recipient.is_some() != (channel == Channel::Sessions) {
            return None;
        }
        if let Some(recipient) = recipient {
            crate::hex::decode::<20>(recipient)?;
        }
        let address = crate::hex::decode::<20>(address)?;
        Some((channel, Address::from(address)))
    }

    /// The oracle a session output topic is addressed to.
    pub fn session_recipient(&self, topic: &str) -> Option<Address> {
        let (Channel::Sessions, _) = self.parse(topic)? else {
            return None;
        };
        let (_, recipient) = topic.rsplit_once('/')?;
        crate::hex::decode::<20>(recipient).map(Address::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let topics = Topics::new("r1/devnet/");
        let node = Address::repeat_byte(0xab);
        let topic = topics.topic(Channel::Heartbeat, &node);
        assert_eq!(
            topic,
            format!("r1/devnet/nodes/0x{}/heartbeat", "ab".repeat(20))
        );
        assert_eq!(topics.parse(&topic), Some((Channel::Heartbeat, node)));
        assert_eq!(
            topics.all(Channel::Observations),
            "r1/devnet/oracles/+/observations"
        );
        let commands = topics.topic(Channel::Commands, &node);
        assert_eq!(topics.parse(&commands), Some((Channel::Commands, node)));
        assert_eq!(topics.parse("r1/devnet/nodes/0xab/heartbeat"), None);
        assert_eq!(topics.parse("r1/other/nodes/0x00/heartbeat"), None);
        assert_eq!(topics.parse(&format!("{topic}/extra")), None);
        assert_eq!(topics.parse(&topic.replace("nodes", "oracles")), None);
    }

    #[test]
    fn session_output_is_addressed_to_one_oracle() {
        let topics = Topics::new("r1/devnet");
        let node = Address::repeat_byte(0xab);
        let oracle = Address::repeat_byte(0xcd);
        let topic = topics.session_output(&node, &oracle);
        assert_eq!(
            topic,
            format!(
                "r1/devnet/nodes/0x{}/sessions/0x{}",
                "ab".repeat(20),
                "cd".repeat(20)
            )
        );
        assert_eq!(topics.parse(&topic), Some((Channel::Sessions, node)));
        assert_eq!(topics.session_recipient(&topic), Some(oracle));
        assert_eq!(
            topics.session_outputs_to(&oracle),
            format!("r1/devnet/nodes/+/sessions/0x{}", "cd".repeat(20))
        );
        let stem = topics.topic(Channel::Sessions, &node);
        assert_eq!(topics.parse(&stem), None);
        assert_eq!(topics.parse(&format!("{stem}/0xcd")), None);
        assert_eq!(topics.parse(&format!("{topic}/extra")), None);
        let heartbeat = topics.topic(Channel::Heartbeat, &node);
        assert_eq!(
            topics.parse(&format!("{heartbeat}/0x{}", "cd".repeat(20))),
            None
        );
        assert_eq!(topics.session_recipient(&heartbeat), None);
    }
}
