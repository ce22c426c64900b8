//! Signed envelopes: sealing then verifying round-trips; every kind of bad message is refused
//! with its own error; and flipping any byte of a sealed envelope makes it fail.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use r1_protocol::envelope::{Envelope, Sealer};
use r1_protocol::messages::{
    DeployCommand, Heartbeat, NodeResources, Resources, StopCommand, WorkloadId, WorkloadReport,
    WorkloadSpec, WorkloadState,
};
use r1_protocol::{Address, Freshness, Identity, MessageKind, Verifier, VerifyError};

const NOW: u64 = 1_790_000_000_000;

fn heartbeat(alias: &str, workloads: u32) -> Heartbeat {
    Heartbeat {
        alias: alias.to_owned(),
        interval_ms: 10_000,
        p2p_addrs: Vec::new(),
        version: "0.1.0".into(),
        uptime_s: 42,
        resources: NodeResources {
            total: Resources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                disk_bytes: 100 << 30,
                gpu: 0,
            },
            free: Resources {
                cpu_millis: 3500,
                memory_bytes: 6 << 30,
                disk_bytes: 90 << 30,
                gpu: 0,
            },
            gpu_model: None,
        },
        labels: BTreeMap::from([("kyb".to_owned(), "true".to_owned())]),
        workloads: (0..workloads)
            .map(|i| WorkloadReport {
                id: WorkloadId { job: 7, replica: i },
                revision: "r1".into(),
                state: WorkloadState::Restarting {
                    restarts: i,
                    last_exit_code: 3,
                    reason: None,
                },
                image_digest: Some(format!("sha256:{i:064x}")),
                ports: vec![],
                healthy: None,
                tunnel: None,
            })
            .collect(),
        retired_logs: vec![],
    }
}

fn deploy(target: Address) -> DeployCommand {
    DeployCommand {
        target,
        workload: WorkloadSpec {
            id: WorkloadId { job: 1, replica: 0 },
            revision: "abc".into(),
            image: "localhost:5000/r1-examples/httpd:1".into(),
            command: vec!["httpd".into(), "-f".into()],
            args: vec![],
            env: BTreeMap::from([("GREETING".to_owned(), "hi \"there\"\n".to_owned())]),
            ports: vec![],
            cpu_millis: 250,
            memory_bytes: 128 << 20,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        },
    }
}

fn verifier_for(senders: &[Address]) -> Verifier<HashSet<Address>> {
    Verifier::new(senders.iter().copied().collect(), Freshness::default())
}

#[test]
fn heartbeat_round_trips() {
    let node = Identity::generate();
    let sealer = Sealer::new(node.clone());
    let sent = heartbeat("edge-1", 2);
    let bytes = sealer.seal(&sent, NOW).unwrap().to_bytes();
    let verified = verifier_for(&[node.address()])
        .verify::<Heartbeat>(&bytes, NOW + 10)
        .unwrap();
    assert_eq!(verified.sender, node.address());
    assert_eq!(verified.message, sent);
    assert_eq!(verified.timestamp_ms, NOW);
}

#[test]
fn forged_signature_is_refused() {
    let oracle = Identity::generate();
    let forger = Identity::generate();
    let mut envelope = Envelope::seal(&forger, &deploy(Address::ZERO), 1, NOW).unwrap();
    envelope.sender = oracle.address();
    let err = verifier_for(&[oracle.address()])
        .verify::<DeployCommand>(&envelope.to_bytes(), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            claimed: oracle.address()
        }
    );
    assert_eq!(err.label(), "bad_signature");
}

#[test]
fn unsigned_message_is_refused() {
    let oracle = Identity::generate();
    let payload = serde_json::to_string(&deploy(Address::ZERO)).unwrap();
    let unsigned = serde_json::json!({
        "v": 1, "kind": "deploy", "sender": format!("{:#x}", oracle.address()),
        "nonce": 1, "ts": NOW, "payload": payload,
    });
    let err = verifier_for(&[oracle.address()])
        .verify::<DeployCommand>(unsigned.to_string().as_bytes(), NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)), "{err}");
    let zero_sig = serde_json::json!({
        "v": 1, "kind": "deploy", "sender": format!("{:#x}", oracle.address()),
        "nonce": 1, "ts": NOW, "payload": payload, "sig": format!("0x{}1b", "00".repeat(64)),
    });
    let err = verifier_for(&[oracle.address()])
        .verify::<DeployCommand>(zero_sig.to_string().as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            claimed: oracle.address()
        }
    );
}

#[test]
fn sender_outside_the_allowed_set_is_refused() {
    let stranger = Identity::generate();
    let bytes = Envelope::seal(&stranger, &deploy(Address::ZERO), 1, NOW)
        .unwrap()
        .to_bytes();
    let err = verifier_for(&[Identity::generate().address()])
        .verify::<DeployCommand>(&bytes, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownSender {
            sender: stranger.address(),
            kind: MessageKind::Deploy
        }
    );
}

#[test]
fn policy_can_restrict_by_kind() {
    let node = Identity::generate();
    let node_address = node.address();
    let only_heartbeats = move |kind: MessageKind, sender: &Address| {
        kind == MessageKind::Heartbeat && *sender == node_address
    };
    let mut verifier = Verifier::new(only_heartbeats, Freshness::default());
    let command = Envelope::seal(&node, &deploy(Address::ZERO), 1, NOW)
        .unwrap()
        .to_bytes();
    assert!(matches!(
        verifier.verify::<DeployCommand>(&command, NOW),
        Err(VerifyError::UnknownSender { .. })
    ));
    let beat = Envelope::seal(&node, &heartbeat("n", 0), 2, NOW)
        .unwrap()
        .to_bytes();
    assert!(verifier.verify::<Heartbeat>(&beat, NOW).is_ok());
}

#[test]
fn stale_and_future_messages_are_refused() {
    let oracle = Identity::generate();
    let mut verifier = verifier_for(&[oracle.address()]);
    let old = Envelope::seal(&oracle, &deploy(Address::ZERO), 1, NOW - 61_000)
        .unwrap()
        .to_bytes();
    assert_eq!(
        verifier.verify::<DeployCommand>(&old, NOW).unwrap_err(),
        VerifyError::Stale { age_ms: 61_000 }
    );
    let ahead = Envelope::seal(&oracle, &deploy(Address::ZERO), 2, NOW + 6_000)
        .unwrap()
        .to_bytes();
    assert_eq!(
        verifier.verify::<DeployCommand>(&ahead, NOW).unwrap_err(),
        VerifyError::FromTheFuture { ahead_ms: 6_000 }
    );
    let far = Envelope::seal(&oracle, &deploy(Address::ZERO), 3, u64::MAX)
        .unwrap()
        .to_bytes();
    assert!(matches!(
        verifier.verify::<DeployCommand>(&far, NOW),
        Err(VerifyError::FromTheFuture { .. })
    ));
    let edge = Envelope::seal(&oracle, &deploy(Address::ZERO), 4, NOW - 60_000)
        .unwrap()
        .to_bytes();
    assert!(verifier.verify::<DeployCommand>(&edge, NOW).is_ok());
}

#[test]
fn replayed_message_is_refused() {
    let oracle = Identity::generate();
    let sealer = Sealer::new(oracle.clone());
    let mut verifier = verifier_for(&[oracle.address()]);
    let first = sealer.seal(&deploy(Address::ZERO), NOW).unwrap();
    let second = sealer.seal(&deploy(Address::ZERO), NOW).unwrap();
    assert!(
        second.nonce > first.nonce,
        "the sealer's nonces must increase within one millisecond"
    );
    verifier
        .verify::<DeployCommand>(&second.to_bytes(), NOW)
        .unwrap();
    let err = verifier
        .verify::<DeployCommand>(&second.to_bytes(), NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Replayed { nonce, last, .. } if nonce == last));
    let err = verifier
        .verify::<DeployCommand>(&first.to_bytes(), NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Replayed { .. }));
    assert_eq!(err.label(), "replayed");
}

#[test]
fn authenticating_apart_then_admitting_refuses_what_verify_refuses() {
    let oracle = Identity::generate();
    let stranger = Identity::generate();
    let sealer = Sealer::new(oracle.clone());
    let mut verifier = verifier_for(&[oracle.address()]);
    let first = sealer.seal(&deploy(Address::ZERO), NOW).unwrap().to_bytes();
    let second = sealer.seal(&deploy(Address::ZERO), NOW).unwrap().to_bytes();
    let authenticate = |bytes: &[u8]| {
        r1_protocol::verify::authenticate::<DeployCommand>(bytes, NOW, &Freshness::default())
    };
    let admitted = verifier.admit(authenticate(&second).unwrap(), NOW).unwrap();
    assert_eq!(admitted.sender, oracle.address());
    // Each authenticates on its own, but the verifier has seen a later nonce, then this one.
    let err = verifier
        .admit(authenticate(&first).unwrap(), NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Replayed { .. }));
    let err = verifier
        .admit(authenticate(&second).unwrap(), NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Replayed { .. }));
    // A stranger's well-signed message is refused by the policy.
    let theirs = Sealer::new(stranger.clone())
        .seal(&deploy(Address::ZERO), NOW)
        .unwrap()
        .to_bytes();
    let err = verifier
        .admit(authenticate(&theirs).unwrap(), NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::UnknownSender { sender, .. } if sender == stranger.address())
    );
    // Forged, stale and mis-kinded messages never reach admission.
    let mut forged = first.clone();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'1' { b'2' } else { b'1' };
    assert!(authenticate(&forged).is_err());
    assert!(matches!(
        r1_protocol::verify::authenticate::<DeployCommand>(
            &first,
            NOW + 3_600_000,
            &Freshness::default()
        ),
        Err(VerifyError::Stale { .. })
    ));
    assert!(matches!(
        r1_protocol::verify::authenticate::<Heartbeat>(&first, NOW, &Freshness::default()),
        Err(VerifyError::WrongKind { .. })
    ));
}

#[test]
fn malformed_payload_and_wrong_kind_are_refused() {
    let oracle = Identity::generate();
    let mut verifier = verifier_for(&[oracle.address()]);
    let stop = Envelope::seal(
        &oracle,
        &StopCommand {
            target: Address::ZERO,
            workload: WorkloadId { job: 1, replica: 0 },
            reason: "job closed".into(),
        },
        1,
        NOW,
    )
    .unwrap();
    assert_eq!(
        verifier
            .verify::<DeployCommand>(&stop.to_bytes(), NOW)
            .unwrap_err(),
        VerifyError::WrongKind {
            expected: MessageKind::Deploy,
            got: MessageKind::Stop
        }
    );
    // A correctly signed envelope whose payload is not a deploy command.
    let payload = r#"{"target":"0x0000000000000000000000000000000000000000"}"#;
    let signing = Envelope::signing_bytes(MessageKind::Deploy, &oracle.address(), 2, NOW, payload);
    let envelope = Envelope {
        kind: MessageKind::Deploy,
        sender: oracle.address(),
        nonce: 2,
        timestamp_ms: NOW,
        payload: payload.to_owned(),
        signature: oracle.sign_personal(&signing).unwrap(),
    };
    let err = verifier
        .verify::<DeployCommand>(&envelope.to_bytes(), NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::MalformedPayload {
                kind: MessageKind::Deploy,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        verifier.verify::<DeployCommand>(b"not json", NOW),
        Err(VerifyError::Malformed(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any message sealed by an allowed sender verifies to the same message.
    #[test]
    fn seal_verify_round_trips(alias in "\\PC{0,40}", workloads in 0u32..4, nonce in 1u64..u64::MAX, skew in 0u64..60_000) {
        let node = Identity::generate();
        let sent = heartbeat(&alias, workloads);
        let bytes = Envelope::seal(&node, &sent, nonce, NOW - skew).unwrap().to_bytes();
        let verified = verifier_for(&[node.address()]).verify::<Heartbeat>(&bytes, NOW).unwrap();
        prop_assert_eq!(verified.message, sent);
        prop_assert_eq!(verified.nonce, nonce);
    }

    /// Changing any single byte of a sealed envelope makes verification fail.
    #[test]
    fn any_flipped_byte_fails(position in any::<prop::sample::Index>(), replacement in any::<u8>(), workloads in 0u32..3) {
        let node = Identity::generate();
        let bytes = Envelope::seal(&node, &heartbeat("edge", workloads), 7, NOW).unwrap().to_bytes();
        let mut tampered = bytes.clone();
        let i = position.index(bytes.len());
        prop_assume!(tampered[i] != replacement);
        tampered[i] = replacement;
        let result = verifier_for(&[node.address()]).verify::<Heartbeat>(&tampered, NOW);
        prop_assert!(result.is_err(), "byte {} changed to {:#04x} still verified: {}", i, replacement, String::from_utf8_lossy(&tampered));
    }
}

/// Exhaustive over positions for one envelope: each byte XOR-ed with every bit fails.
#[test]
fn every_bit_flip_fails() {
    let node = Identity::generate();
    let bytes = Envelope::seal(&node, &deploy(node.address()), 9, NOW)
        .unwrap()
        .to_bytes();
    let mut verifier = verifier_for(&[node.address()]);
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[i] ^= 1 << bit;
            assert!(
                verifier.verify::<DeployCommand>(&tampered, NOW).is_err(),
                "flipping bit {bit} of byte {i} still verified"
            );
        }
    }
}
