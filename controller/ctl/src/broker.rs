//! `r1ctl broker mosquitto-config`: the files that give Debian's mosquitto the embedded broker's
//! rules (see [`r1_protocol::mosquitto`]), written into a directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use r1_protocol::Address;
use r1_protocol::broker_tls::TlsFiles;
use r1_protocol::mosquitto::{self, MosquittoSettings};
use r1_protocol::topics::Topics;

/// What the mosquitto files are for.
#[derive(Debug, Clone)]
pub struct MosquittoFiles {
    /// Root of every topic of the network.
    pub topic_root: String,
    /// The oracles' addresses.
    pub oracles: Vec<Address>,
    /// mosquitto's listener.
    pub listen: SocketAddr,
    /// TLS certificate and key of the listener, if it serves `mqtts`.
    pub tls: Option<TlsFiles>,
}

/// Writes `r1.conf` and `r1.acl` into `dir` (the config names `dir/r1.passwd`, which the
/// operator fills with `mosquitto_passwd`); returns the paths written.
pub fn write_mosquitto(dir: &Path, files: &MosquittoFiles) -> std::io::Result<Vec<PathBuf>> {
    let (conf, acl, passwd) = (
        dir.join("r1.conf"),
        dir.join("r1.acl"),
        dir.join("r1.passwd"),
    );
    let config = mosquitto::config(&MosquittoSettings {
        listen: files.listen,
        password_file: &passwd,
        acl_file: &acl,
        tls: files.tls.as_ref(),
    });
    std::fs::write(&conf, config)?;
    std::fs::write(
        &acl,
        mosquitto::acl(&Topics::new(files.topic_root.clone()), &files.oracles),
    )?;
    Ok(vec![conf, acl])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_naming_its_acl_and_password_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = MosquittoFiles {
            topic_root: "r1/devnet".into(),
            oracles: vec![Address::repeat_byte(1)],
            listen: "0.0.0.0:1883".parse().unwrap(),
            tls: None,
        };
        let written = write_mosquitto(dir.path(), &files).unwrap();
        let conf = std::fs::read_to_string(&written[0]).unwrap();
        assert!(conf.contains(&format!("acl_file {}", dir.path().join("r1.acl").display())));
        assert!(conf.contains(&format!(
            "password_file {}",
            dir.path().join("r1.passwd").display()
        )));
        let acl = std::fs::read_to_string(&written[1]).unwrap();
        assert!(
            acl.contains(&format!("user 0x{}", "01".repeat(20))),
            "{acl}"
        );
    }
}
