//! Who may publish and subscribe where: a node speaks only under its own name and hears only
//! its own commands and the oracles' rosters; an oracle speaks under its own name, commands any
//! node, and hears every node's heartbeats and status, every oracle's observations and
//! requests, and the output of the sessions it opened itself (a node addresses each session's
//! output to one oracle). Wildcards never widen that: a filter is allowed only as one of the
//! oracle's four `+` filters or its own sessions filter, or as a topic it could hear anyway.
//!
//! The rules are written down once, as the channel lists below: the oracle's embedded broker
//! gate checks every PUBLISH and SUBSCRIBE with [`allowed`], and the mosquitto ACL file
//! ([`crate::mosquitto::acl`]) is written from the same lists.

use crate::Address;
use crate::topics::{Channel, Topics};

/// What a client is to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Any other key: an edge node.
    Node,
    /// A key in the broker's oracle set.
    Oracle,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Node => "node",
            Self::Oracle => "oracle",
        })
    }
}

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// PUBLISH on the topic.
    Publish,
    /// SUBSCRIBE to the filter.
    Subscribe,
}

/// The channels a node publishes on, under its own address only (a session's output to any
/// oracle).
pub const NODE_PUBLISHES: [Channel; 3] = [Channel::Heartbeat, Channel::Status, Channel::Sessions];

/// The channels a node hears, under its own address only.
pub const NODE_HEARS: [Channel; 1] = [Channel::Commands];

/// The channels a node hears under every oracle's address (by name or by `+`).
pub const NODE_HEARS_ANY: [Channel; 2] = [Channel::Roster, Channel::Cstore];
/// The channels an oracle publishes on under its own address only.
pub const ORACLE_PUBLISHES_OWN: [Channel; 4] = [
    Channel::Observations,
    Channel::Requests,
    Channel::Roster,
    Channel::Cstore,
];

/// The channels an oracle publishes on under any address (it commands every node).
pub const ORACLE_PUBLISHES_ANY: [Channel; 1] = [Channel::Commands];

/// The channels an oracle hears, under every address; besides, it hears the output of its own
/// sessions ([`Topics::session_outputs_to`]).
pub const ORACLE_HEARS: [Channel; 4] = [
    Channel::Heartbeat,
    Channel::Status,
    Channel::Observations,
    Channel::Requests,
];

/// Whether `client` with `role` may do `action` on `topic` (a topic or subscription filter)
/// under `topics`' root.
pub fn allowed(topics: &Topics, client: &Address, role: Role, action: Action, topic: &str) -> bool {
    let hears_all: &[Channel] = match role {
        Role::Node => &NODE_HEARS_ANY,
        Role::Oracle => &ORACLE_HEARS,
    };
    if action == Action::Subscribe && hears_all.iter().any(|c| topics.all(*c) == topic) {
        return true;
    }
    if action == Action::Subscribe
        && role == Role::Oracle
        && topics.session_outputs_to(client) == topic
    {
        return true;
    }
    let Some((channel, owner)) = topics.parse(topic) else {
        return false;
    };
    let recipient = topics.session_recipient(topic);
    let canonical = match recipient {
        Some(oracle) => topics.session_output(&owner, &oracle),
        None => topics.topic(channel, &owner),
    };
    if canonical != topic {
        return false;
    }
    if role == Role::Oracle && action == Action::Subscribe && channel == Channel::Sessions {
        return recipient == Some(*client);
    }
    let own = owner == *client;
    match (role, action) {
        (Role::Node, Action::Publish) => own && NODE_PUBLISHES.contains(&channel),
        (Role::Node, Action::Subscribe) => {
            (own && NODE_HEARS.contains(&channel)) || NODE_HEARS_ANY.contains(&channel)
        }
        (Role::Oracle, Action::Publish) => {
            ORACLE_PUBLISHES_ANY.contains(&channel)
                || (own && ORACLE_PUBLISHES_OWN.contains(&channel))
        }
        (Role::Oracle, Action::Subscribe) => ORACLE_HEARS.contains(&channel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Channel; 8] = Channel::ALL;

    fn topics() -> Topics {
        Topics::new("r1/devnet")
    }

    /// Every (role, action, channel, own topic?) and whether it is allowed.
    fn expected(role: Role, action: Action, channel: Channel, own: bool) -> bool {
        use Channel::*;
        match (role, action) {
            (Role::Node, Action::Publish) => {
                own && matches!(channel, Heartbeat | Status | Sessions)
            }
            (Role::Node, Action::Subscribe) => {
                (own && channel == Commands) || matches!(channel, Roster | Cstore)
            }
            (Role::Oracle, Action::Publish) => {
                channel == Commands
                    || (own && matches!(channel, Observations | Requests | Roster | Cstore))
            }
            (Role::Oracle, Action::Subscribe) => !matches!(channel, Commands | Roster | Cstore),
        }
    }

    #[test]
    fn every_role_action_and_channel_on_own_and_foreign_topics() {
        let topics = topics();
        let me = Address::repeat_byte(0x11);
        let other = Address::repeat_byte(0x22);
        for role in [Role::Node, Role::Oracle] {
            for action in [Action::Publish, Action::Subscribe] {
                for channel in ALL {
                    for (owner, own) in [(me, true), (other, false)] {
                        let topic = match channel {
                            Channel::Sessions => topics.session_output(&owner, &me),
                            _ => topics.topic(channel, &owner),
                        };
                        assert_eq!(
                            allowed(&topics, &me, role, action, &topic),
                            expected(role, action, channel, own),
                            "{role} {action:?} {topic}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wildcards_are_only_the_oracles_five_filters_and_the_nodes_roster_and_cstore_filters() {
        // The oracles' four `+` filters and each oracle's own sessions filter.
        let topics = topics();
        let me = Address::repeat_byte(0x11);
        for channel in ALL {
            let filter = topics.all(channel);
            assert_eq!(
                allowed(&topics, &me, Role::Node, Action::Subscribe, &filter),
                matches!(channel, Channel::Roster | Channel::Cstore),
                "{filter}"
            );
            assert!(!allowed(&topics, &me, Role::Node, Action::Publish, &filter));
            assert!(!allowed(
                &topics,
                &me,
                Role::Oracle,
                Action::Publish,
                &filter
            ));
            assert_eq!(
                allowed(&topics, &me, Role::Oracle, Action::Subscribe, &filter),
                !matches!(
                    channel,
                    Channel::Commands | Channel::Roster | Channel::Cstore | Channel::Sessions
                ),
                "{filter}"
            );
        }
        let own_commands = topics.topic(Channel::Commands, &me);
        let widened = [
            "#".to_owned(),
            "+".to_owned(),
            "r1/#".to_owned(),
            "r1/devnet/#".to_owned(),
            "r1/devnet/nodes/#".to_owned(),
            "r1/devnet/+/+/commands".to_owned(),
            "r1/devnet/nodes/+/+".to_owned(),
            "r1/devnet/nodes/+/commands".to_owned(),
            format!("{own_commands}/#"),
            own_commands.replace("commands", "+"),
            own_commands.replace("commands", "#"),
            format!("$share/g/{own_commands}"),
            "$SYS/#".to_owned(),
        ];
        for role in [Role::Node, Role::Oracle] {
            for action in [Action::Publish, Action::Subscribe] {
                for filter in &widened {
                    assert!(
                        !allowed(&topics, &me, role, action, filter),
                        "{role} {action:?} {filter}"
                    );
                }
            }
        }
    }

    #[test]
    fn session_output_goes_only_to_the_oracle_it_is_addressed_to() {
        let topics = topics();
        let me = Address::repeat_byte(0x11);
        let other = Address::repeat_byte(0x22);
        let node = Address::repeat_byte(0x33);
        let allowed_to = |role, action, topic: &str| allowed(&topics, &me, role, action, topic);
        assert!(allowed_to(
            Role::Oracle,
            Action::Subscribe,
            &topics.session_outputs_to(&me)
        ));
        for refused in [
            topics.session_outputs_to(&other),
            topics.session_output(&node, &other),
            topics.all(Channel::Sessions),
            format!("{}/+", topics.all(Channel::Sessions)),
            format!("{}/#", topics.all(Channel::Sessions)),
            format!("{}/#", topics.topic(Channel::Sessions, &node)),
            topics.topic(Channel::Sessions, &node),
        ] {
            assert!(
                !allowed_to(Role::Oracle, Action::Subscribe, &refused),
                "{refused}"
            );
        }
        // A node addresses its own output to any oracle, and nothing else.
        assert!(allowed_to(
            Role::Node,
            Action::Publish,
            &topics.session_output(&me, &other)
        ));
        for refused in [
            topics.topic(Channel::Sessions, &me),
            topics.session_output(&node, &other),
            format!("{}/+", topics.topic(Channel::Sessions, &me)),
            format!("{}/extra", topics.session_output(&me, &other)),
        ] {
            assert!(
                !allowed_to(Role::Node, Action::Publish, &refused),
                "{refused}"
            );
        }
    }

    #[test]
    fn only_canonical_topics_of_this_root() {
        let topics = topics();
        let me = Address::repeat_byte(0xab);
        let heartbeat = topics.topic(Channel::Heartbeat, &me);
        assert!(allowed(
            &topics,
            &me,
            Role::Node,
            Action::Publish,
            &heartbeat
        ));
        for bad in [
            heartbeat.to_uppercase(),
            heartbeat.replace("0xab", "0xAB"),
            heartbeat.replace("r1/devnet", "r1/other"),
            heartbeat.replace("r1/devnet/", "r1/devnet//"),
            format!("/{heartbeat}"),
            format!("{heartbeat}/"),
            format!("{heartbeat}/extra"),
            heartbeat.replace("nodes", "oracles"),
            String::new(),
        ] {
            assert!(
                !allowed(&topics, &me, Role::Node, Action::Publish, &bad),
                "{bad}"
            );
        }
    }
}
