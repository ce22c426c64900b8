//! Syntax checks for the names that appear in manifests: object names, label keys and values,
//! environment variable names, hostnames and EVM addresses.
//!
//! Each check returns `Err(reason)` with a sentence a user can act on; the caller adds the field
//! path.

use alloy_primitives::Address;

/// Longest DNS label (RFC 1123).
const DNS_LABEL_MAX: usize = 63;
/// Longest DNS subdomain (RFC 1123).
const DNS_SUBDOMAIN_MAX: usize = 253;

/// An RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > DNS_LABEL_MAX {
        return Err(format!(
            "{name:?} is longer than {DNS_LABEL_MAX} characters"
        ));
    }
    let bytes = name.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner_ok = |b: u8| edge_ok(b) || b == b'-';
    if !edge_ok(bytes[0]) || !edge_ok(bytes[bytes.len() - 1]) || !bytes.iter().all(|&b| inner_ok(b))
    {
        return Err(format!(
            "{name:?} must consist of lowercase letters, digits and '-', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// An RFC 1123 subdomain, the form of Kubernetes object names: dot-separated labels.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > DNS_SUBDOMAIN_MAX {
        return Err(format!(
            "{name:?} is longer than {DNS_SUBDOMAIN_MAX} characters"
        ));
    }
    name.split('.').try_for_each(dns_label).map_err(|_| {
        format!("{name:?} is not a valid name: use lowercase letters, digits, '-' and '.'")
    })
}

/// A public hostname such as `shop.example.com`: at least two labels, case-insensitive.
pub fn hostname(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    dns_subdomain(&lower).map_err(|_| format!("{name:?} is not a valid hostname"))?;
    if !lower.contains('.') {
        return Err(format!("{name:?} is not a fully qualified hostname"));
    }
    Ok(())
}

/// A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_` or `.`.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix).map_err(|_| format!("label key {key:?} has an invalid prefix"))?;
    }
    label_value(name)
        .and_then(|()| {
            if name.is_empty() {
                Err(String::new())
            } else {
                Ok(())
            }
        })
        .map_err(|_| format!("{key:?} is not a valid label key"))
}

/// A Kubernetes label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting and
/// ending alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let bytes = value.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_alphanumeric();
    let inner_ok = |b: u8| edge_ok(b) || matches!(b, b'-' | b'_' | b'.');
    if value.len() > DNS_LABEL_MAX
        || !edge_ok(bytes[0])
        || !edge_ok(bytes[bytes.len() - 1])
        || !bytes.iter().all(|&b| inner_ok(b))
    {
        return Err(format!("{value:?} is not a valid label value"));
    }
    Ok(())
}

/// An environment variable name a shell can use: a letter or `_`, then letters, digits, `_`,
/// `.` or `-` (the set Kubernetes accepts).
pub fn env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'-'));
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(format!(
            "{name:?} is not a valid environment variable name: use letters, digits, '_', '-' and '.', not starting with a digit"
        ));
    }
    Ok(())
}

/// A `0x`-prefixed 20-byte EVM address; mixed case must carry a valid EIP-55 checksum.
pub fn evm_address(text: &str) -> Result<Address, String> {
    let hex = text.strip_prefix("0x").ok_or_else(|| {
        format!("{text:?} is not an EVM address (expected 0x followed by 40 hex digits)")
    })?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not an EVM address (expected 0x followed by 40 hex digits)"
        ));
    }
    let mixed_case =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed_case {
        Address::parse_checksummed(text, None)
            .map_err(|_| format!("{text:?} has an invalid EIP-55 checksum"))
    } else {
        text.parse::<Address>()
            .map_err(|_| format!("{text:?} is not an EVM address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(dns_label("web-1").is_ok());
        assert!(dns_label("Web").is_err());
        assert!(dns_label("-web").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_subdomain("shop.example").is_ok());
        assert!(dns_subdomain("shop..example").is_err());
        assert!(hostname("Shop.Example.com").is_ok());
        assert!(hostname("localhost").is_err());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key("kyb").is_ok());
        assert!(label_key("ratio1.ai/region").is_ok());
        assert!(label_key("ratio1.ai/").is_err());
        assert!(label_key("bad key").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("EU_west-1.a").is_ok());
        assert!(label_value("-x").is_err());
    }

    #[test]
    fn env_names() {
        for good in ["PATH", "_x", "my.var", "A-B", "x1"] {
            assert!(env_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1ABC", "A=B", "A B", "é"] {
            assert!(env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert!(evm_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_ok());
        assert!(evm_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_ok());
        assert!(evm_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_err());
        assert!(evm_address("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_err());
        assert!(evm_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea").is_err());
    }
}
