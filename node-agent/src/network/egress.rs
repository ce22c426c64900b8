//! What a replica may reach beyond its node, as the node's operator configures it: anything
//! but the node's own networks (the default: the public internet, never the operator's LAN, the
//! cloud's metadata service, the node itself or another replica), only listed networks, or
//! nothing (no interface at all, loopback only). The rules are iptables rules of the OUTPUT
//! chain inside the replica's own network namespace, where the replica (without
//! `CAP_NET_ADMIN`) cannot change them. Pure.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    /// The network's first address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((&text, "32"));
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 network like 10.0.0.0/8"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0-32"))?;
        Ok(Self { addr, prefix })
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> Self {
        format!("{}/{}", cidr.addr, cidr.prefix)
    }
}

impl Cidr {
    /// The network as text.
    pub fn text(&self) -> String {
        String::from(*self)
    }
}

/// Networks no replica reaches by default: private, shared, link-local (metadata services),
/// loopback of the host and multicast.
pub fn private_networks() -> Vec<Cidr> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "224.0.0.0/4",
    ]
    .into_iter()
    .filter_map(|c| Cidr::try_from(c.to_owned()).ok())
    .collect()
}

/// How much of the outside world replicas reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EgressMode {
    /// Anything but the replicas' own subnet and the `deny` list.
    #[default]
    Public,
    /// Only the `allow` list.
    Only,
    /// Nothing: replicas get no interface, only loopback.
    None,
}

/// What replicas of this node may reach outside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Egress {
    /// How much.
    #[serde(default)]
    pub mode: EgressMode,
    /// With `public`: networks refused besides the replicas' subnet (by default the private,
    /// shared, link-local, loopback and multicast ones).
    #[serde(default = "private_networks")]
    pub deny: Vec<Cidr>,
    /// With `only`: the networks allowed.
    #[serde(default)]
    pub allow: Vec<Cidr>,
}

impl Default for Egress {
    fn default() -> Self {
        Self {
            mode: EgressMode::Public,
            deny: private_networks(),
            allow: Vec::new(),
        }
    }
}

/// The `iptables` argument lists, in order, that hold `egress` in a replica's namespace whose
/// replicas' subnet is `subnet`; empty for [`EgressMode::None`], which gets no interface.
pub fn rules(egress: &Egress, subnet: Cidr) -> Vec<Vec<String>> {
    let rule = |target: &str, destination: Option<Cidr>, tcp: bool| {
        let mut args = vec!["-A".to_owned(), "OUTPUT".to_owned()];
        if tcp {
            args.extend(["-p".to_owned(), "tcp".to_owned()]);
        }
        if let Some(cidr) = destination {
            args.extend(["-d".to_owned(), cidr.text()]);
        }
        args.extend(["-j".to_owned(), target.to_owned()]);
        if tcp {
            args.extend(["--reject-with".to_owned(), "tcp-reset".to_owned()]);
        }
        args
    };
    // A refused TCP connection is reset at once rather than left to time out.
    let reject = |destination: Option<Cidr>| {
        [
            rule("REJECT", destination, true),
            rule("REJECT", destination, false),
        ]
    };
    let loopback = vec![
        "-A".to_owned(),
        "OUTPUT".to_owned(),
        "-o".to_owned(),
        "lo".to_owned(),
        "-j".to_owned(),
        "ACCEPT".to_owned(),
    ];
    match egress.mode {
        EgressMode::None => Vec::new(),
        EgressMode::Public => {
            let mut all = vec![loopback];
            all.extend(reject(Some(subnet)));
            all.extend(egress.deny.iter().flat_map(|cidr| reject(Some(*cidr))));
            all.push(rule("ACCEPT", None, false));
            all
        }
        EgressMode::Only => {
            let mut all = vec![loopback];
            all.extend(
                egress
                    .allow
                    .iter()
                    .map(|cidr| rule("ACCEPT", Some(*cidr), false)),
            );
            all.extend(reject(None));
            all
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn networks_are_read_and_written_back() {
        assert_eq!(cidr("10.88.0.0/16").text(), "10.88.0.0/16");
        assert_eq!(cidr("1.2.3.4").text(), "1.2.3.4/32");
        assert!(Cidr::try_from("10.0.0.0/33".to_owned()).is_err());
        assert!(Cidr::try_from("example.com/8".to_owned()).is_err());
        let egress: Egress =
            serde_yaml::from_str("mode: only\nallow: [\"203.0.113.0/24\"]").unwrap();
        assert_eq!(egress.mode, EgressMode::Only);
        assert_eq!(egress.allow, vec![cidr("203.0.113.0/24")]);
        let public: Egress = serde_yaml::from_str("mode: public").unwrap();
        assert_eq!(public, Egress::default());
    }

    #[test]
    fn the_default_refuses_the_subnet_and_private_networks_then_accepts() {
        let subnet = cidr("10.88.0.0/16");
        let all = rules(&Egress::default(), subnet);
        let text: Vec<String> = all.iter().map(|r| r.join(" ")).collect();
        assert_eq!(text[0], "-A OUTPUT -o lo -j ACCEPT");
        assert_eq!(
            text[1],
            "-A OUTPUT -p tcp -d 10.88.0.0/16 -j REJECT --reject-with tcp-reset"
        );
        assert_eq!(text[2], "-A OUTPUT -d 10.88.0.0/16 -j REJECT");
        assert!(text.contains(&"-A OUTPUT -d 169.254.0.0/16 -j REJECT".to_owned()));
        assert_eq!(text.last().map(String::as_str), Some("-A OUTPUT -j ACCEPT"));
        let only = Egress {
            mode: EgressMode::Only,
            allow: vec![cidr("10.88.0.1/32")],
            ..Egress::default()
        };
        let only = rules(&only, subnet);
        let text: Vec<String> = only.iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            text,
            [
                "-A OUTPUT -o lo -j ACCEPT",
                "-A OUTPUT -d 10.88.0.1/32 -j ACCEPT",
                "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset",
                "-A OUTPUT -j REJECT"
            ]
        );
        let none = Egress {
            mode: EgressMode::None,
            ..Egress::default()
        };
        assert!(rules(&none, subnet).is_empty());
    }
}
