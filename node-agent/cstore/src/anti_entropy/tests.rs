#![allow(clippy::unwrap_used)] // test fixtures and proptest bodies, outside the usual exemption

use std::sync::LazyLock;

use proptest::prelude::*;
use r1_protocol::Identity;

use super::*;
use crate::clock::Stamp;

static NODES: LazyLock<Vec<Identity>> =
    LazyLock::new(|| (0..3).map(|_| Identity::generate()).collect());

/// Writes by three nodes to 48 keys and fields of two namespaces at three stamps, signed once:
/// random replicas are subsets, so conflicts (and equal stamps) are common.
static POOL: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    let mut pool = Vec::new();
    for node in 0..3u8 {
        for key in 0..48u8 {
            for wall_ms in 0..3u8 {
                let namespace = ["app", "sys"][usize::from(key % 2)];
                let field = (key >= 24).then(|| vec![b'f', key % 3]);
                let key = Key::new(namespace, vec![b'k', key / 2 % 12], field).unwrap();
                let value =
                    (!(key.key[1] + wall_ms).is_multiple_of(5)).then(|| vec![node, wall_ms]);
                pool.push(write(key, value, u64::from(wall_ms), usize::from(node)));
            }
        }
    }
    pool
});

/// 5 000 distinct keys, written once each.
static BIG: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    (0..5000)
        .map(|i| {
            let value = format!("value number {i}").into_bytes();
            write(name(&format!("k{i:05}")), Some(value), 1, i % 3)
        })
        .collect()
});

fn name(key: &str) -> Key {
    Key::new("app", key.as_bytes().to_vec(), None).unwrap()
}

fn write(key: Key, value: Option<Vec<u8>>, wall_ms: u64, node: usize) -> Entry {
    let stamp = Stamp {
        wall_ms,
        logical: 0,
    };
    Entry::signed(key, value, None, stamp, &NODES[node]).unwrap()
}

fn replica_of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Replica {
    let mut replica = Replica::new();
    for entry in entries {
        replica.apply(entry.clone());
    }
    replica
}

fn random_replica() -> impl Strategy<Value = Replica> {
    proptest::collection::vec(0..POOL.len(), 0..120)
        .prop_map(|picks| replica_of(picks.iter().map(|&i| &POOL[i])))
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (
        1usize..6,
        2usize..8,
        6usize..40,
        prop_oneof![Just(1usize << 20), 600usize..4000],
    )
        .prop_map(|(leaf, split, max_ranges, max_answer_bytes)| Limits {
            leaf,
            split,
            max_ranges,
            max_answer_bytes,
        })
}

/// What one pull cost.
#[derive(Debug, Default)]
struct Pull {
    rounds: usize,
    entries: usize,
    bytes: usize,
}

/// `asker` pulls from `answerer` through the byte form until nothing differs, checking every
/// message against the limits; panics past `max_rounds`.
fn pull(asker: &mut Replica, answerer: &Replica, limits: &Limits, max_rounds: usize) -> Pull {
    let mut cost = Pull::default();
    let mut next = Some(open(asker));
    while let Some(request) = next {
        cost.rounds += 1;
        assert!(
            cost.rounds <= max_rounds,
            "no end after {max_rounds} rounds"
        );
        assert!(request.ranges.len() <= limits.max_ranges.max(3));
        let request_bytes = request.encode();
        let request = Request::decode(&request_bytes, limits).unwrap();
        let reply = answer(answerer, &request, limits);
        assert!(reply.ranges.len() + reply.pending.len() <= limits.max_ranges.max(3));
        let reply_bytes = reply.encode();
        let reply = Answer::decode(&reply_bytes, limits).unwrap();
        cost.bytes += request_bytes.len() + reply_bytes.len();
        let (entries, following) = follow(asker, &reply);
        cost.entries += entries.len();
        for entry in entries {
            asker.apply(entry);
        }
        next = following;
    }
    cost
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn anti_entropy_both_ways_converges_to_the_merge(
        a in random_replica(),
        b in random_replica(),
        limits in small_limits(),
    ) {
        let mut merged = a.clone();
        merged.merge(&b);
        let (mut a, mut b) = (a, b);
        pull(&mut a, &b, &limits, 64);
        prop_assert_eq!(&a, &merged);
        pull(&mut b, &a, &limits, 64);
        prop_assert_eq!(&b, &merged);
    }

    #[test]
    fn anti_entropy_among_three_converges_to_the_merge(
        a in random_replica(),
        b in random_replica(),
        c in random_replica(),
        limits in small_limits(),
    ) {
        let mut merged = a.clone();
        merged.merge(&b);
        merged.merge(&c);
        let (mut a, mut b, mut c) = (a, b, c);
        pull(&mut a, &b, &limits, 64);
        pull(&mut a, &c, &limits, 64);
        pull(&mut b, &a, &limits, 64);
        pull(&mut c, &b, &limits, 64);
        prop_assert_eq!(&a, &merged);
        prop_assert_eq!(&b, &merged);
        prop_assert_eq!(&c, &merged);
    }
}

#[test]
fn anti_entropy_pulls_a_few_differences_out_of_5000_cheaply() {
    let mut a = replica_of(BIG.iter());
    let mut b = a.clone();
    b.apply(write(BIG[700].key.clone(), Some(b"newer".to_vec()), 2, 1));
    b.apply(write(BIG[3100].key.clone(), None, 2, 2));
    b.apply(write(name("k02500x"), Some(b"extra".to_vec()), 1, 0));
    let full_dump: usize = b.entries().map(|e| e.to_bytes().len()).sum();
    let limits = Limits::default();

    let cost = pull(&mut a, &b, &limits, 64);
    assert_eq!(a, b);
    assert!(cost.rounds <= 5, "{cost:?}");
    assert!(cost.entries <= 3 * limits.leaf, "{cost:?}");
    assert!(
        cost.bytes * 10 < full_dump,
        "{cost:?} of a {full_dump}-byte dump"
    );

    let back = pull(&mut b, &a, &limits, 64);
    assert_eq!(
        (back.rounds, back.entries),
        (1, 0),
        "equal replicas: one round, nothing sent"
    );
}

#[test]
fn anti_entropy_sends_nothing_for_equal_ranges_and_splits_by_the_answerers_keys() {
    let b = replica_of(BIG[..100].iter());
    let limits = Limits {
        leaf: 8,
        split: 4,
        ..Limits::default()
    };
    let reply = answer(&b, &open(&Replica::new()), &limits);
    assert!(reply.entries.is_empty() && reply.pending.is_empty());
    let counts: Vec<u64> = reply.ranges.iter().map(|r| r.fingerprint.count).collect();
    assert_eq!(counts, vec![25, 25, 25, 25]);
    assert_eq!(reply.ranges[1].range.lo.as_ref(), Some(&BIG[25].key));
    assert_eq!(reply.ranges[3].range.hi, None);

    let equal = answer(&b, &open(&b), &limits);
    assert_eq!(equal, Answer::default());
    assert_eq!(follow(&b, &equal), (Vec::new(), None));
}

#[test]
fn anti_entropy_with_a_tiny_answer_budget_converges_an_entry_a_round() {
    let b = replica_of(BIG[..100].iter());
    let limits = Limits {
        max_answer_bytes: 1,
        ..Limits::default()
    };
    let mut a = Replica::new();
    let mut next = Some(open(&a));
    let mut rounds = 0;
    while let Some(request) = next {
        rounds += 1;
        assert!(rounds <= 110);
        let reply = answer(&b, &request, &limits);
        assert!(reply.entries.len() <= 1, "one entry over the budget, alone");
        let (entries, following) = follow(&a, &reply);
        for entry in entries {
            a.apply(entry);
        }
        next = following;
    }
    assert_eq!(a, b);
    assert!(rounds > 100, "{rounds} rounds");
}

#[test]
fn anti_entropy_an_entry_larger_than_the_budget_still_travels() {
    let big_values: Vec<Entry> = (0..3)
        .map(|i| write(name(&format!("big{i}")), Some(vec![i; 5000]), 1, 0))
        .collect();
    let b = replica_of(&big_values);
    let limits = Limits {
        max_answer_bytes: 1000,
        ..Limits::default()
    };
    let mut a = Replica::new();
    let cost = pull(&mut a, &b, &limits, 64);
    assert_eq!(a, b);
    assert_eq!((cost.rounds, cost.entries), (3, 3));
}

#[test]
fn anti_entropy_keeps_to_max_ranges() {
    let b = replica_of(BIG[..400].iter());
    let mut a = replica_of(BIG[..400].iter().step_by(2));
    for limits in [
        Limits {
            leaf: 2,
            split: 16,
            max_ranges: 3,
            ..Limits::default()
        },
        Limits {
            leaf: 1,
            split: 2,
            max_ranges: 0,
            max_answer_bytes: 0,
        },
    ] {
        let mut asker = a.clone();
        pull(&mut asker, &b, &limits, 2000);
        assert_eq!(asker, b);
    }
    let cost = pull(&mut a, &b, &Limits::default(), 64);
    assert_eq!(a, b);
    assert!(cost.rounds <= 4, "{cost:?}");
}

#[test]
fn anti_entropy_sends_no_unsealed_entry() {
    let sealed = write(name("a"), Some(b"v".to_vec()), 1, 0);
    let stamp = Stamp {
        wall_ms: 1,
        logical: 0,
    };
    let unsealed = Entry::unsealed(
        name("b"),
        Some(b"v".to_vec()),
        None,
        stamp,
        NODES[0].address(),
    )
    .unwrap();
    let b = replica_of([&sealed, &unsealed]);
    let reply = answer(&b, &open(&Replica::new()), &Limits::default());
    assert_eq!(reply.entries, vec![sealed]);
}

fn sample_answer() -> Answer {
    let b = replica_of(BIG[..300].iter());
    let limits = Limits {
        leaf: 4,
        split: 3,
        max_ranges: 5,
        max_answer_bytes: 400,
    };
    let mut a = replica_of(BIG[..300].iter().step_by(2));
    let first = answer(&b, &open(&a), &limits);
    let (_, next) = follow(&a, &first);
    let next = next.unwrap();
    let mut reply = answer(&b, &next, &limits);
    while reply.entries.is_empty() || reply.pending.is_empty() {
        let (entries, next) = follow(&a, &reply);
        for entry in entries {
            a.apply(entry);
        }
        reply = answer(&b, &next.unwrap(), &limits);
    }
    reply
}

#[test]
fn anti_entropy_messages_round_trip() {
    let limits = Limits::default();
    let replica = replica_of(BIG[..50].iter());
    let request = Request {
        ranges: vec![
            summarize(
                &replica,
                &KeyRange {
                    lo: None,
                    hi: Some(BIG[10].key.clone()),
                },
            ),
            summarize(
                &replica,
                &KeyRange {
                    lo: Some(Key::new("app", b"z".to_vec(), Some(b"f".to_vec())).unwrap()),
                    hi: None,
                },
            ),
        ],
    };
    assert_eq!(Request::decode(&request.encode(), &limits), Ok(request));
    let opening = open(&Replica::new());
    assert_eq!(Request::decode(&opening.encode(), &limits), Ok(opening));

    let reply = sample_answer();
    assert!(!reply.entries.is_empty() && !reply.pending.is_empty());
    assert_eq!(Answer::decode(&reply.encode(), &limits), Ok(reply));
    let empty = Answer::default();
    assert_eq!(Answer::decode(&empty.encode(), &limits), Ok(empty));
}

#[test]
fn anti_entropy_cut_or_padded_messages_are_refused() {
    let limits = Limits::default();
    let request = open(&replica_of(BIG[..3].iter())).encode();
    for cut in 0..request.len() {
        assert!(Request::decode(&request[..cut], &limits).is_err());
    }
    let reply = sample_answer().encode();
    for cut in 0..reply.len() {
        assert!(Answer::decode(&reply[..cut], &limits).is_err());
    }
    let padded = |bytes: &[u8]| [bytes, &[0]].concat();
    assert_eq!(
        Request::decode(&padded(&request), &limits),
        Err(AntiEntropyError::Trailing(1))
    );
    assert_eq!(
        Answer::decode(&padded(&reply), &limits),
        Err(AntiEntropyError::Trailing(1))
    );
    let mut versioned = request.clone();
    versioned[0] = 2;
    assert_eq!(
        Request::decode(&versioned, &limits),
        Err(AntiEntropyError::Version(2))
    );
}

#[test]
fn anti_entropy_over_limit_counts_are_refused_before_reading_on() {
    let limits = Limits::default();
    let too_many_ranges = [1, 0, 0, 1, 1];
    assert!(matches!(
        Request::decode(&too_many_ranges, &limits),
        Err(AntiEntropyError::OverLimit {
            what: "ranges",
            got: 257,
            max: 256
        })
    ));
    let too_many_entries = [1, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        Answer::decode(&too_many_entries, &limits),
        Err(AntiEntropyError::OverLimit {
            what: "answer entries",
            ..
        })
    ));
    let more_than_the_bytes_hold = [1, 0, 0, 0, 200, 0, 0];
    assert_eq!(
        Request::decode(&more_than_the_bytes_hold, &limits),
        Err(AntiEntropyError::Truncated)
    );
    let two_entries = Answer {
        entries: BIG[..2].to_vec(),
        ..Answer::default()
    };
    let tight = Limits {
        max_answer_bytes: 100,
        ..limits
    };
    assert!(matches!(
        Answer::decode(&two_entries.encode(), &tight),
        Err(AntiEntropyError::OverLimit {
            what: "answer entry bytes",
            ..
        })
    ));
    let long_namespace = [&[1u8, 0, 0, 0, 1, 1, 200][..], &[b'a'; 200]].concat();
    assert!(matches!(
        Request::decode(&long_namespace, &limits),
        Err(AntiEntropyError::OverLimit {
            what: "namespace bytes",
            ..
        })
    ));
}

#[test]
fn anti_entropy_unordered_ranges_and_bad_keys_are_refused() {
    let limits = Limits::default();
    let replica = Replica::new();
    let (k1, k2) = (BIG[1].key.clone(), BIG[2].key.clone());
    let range = |lo: Option<&Key>, hi: Option<&Key>| {
        summarize(
            &replica,
            &KeyRange {
                lo: lo.cloned(),
                hi: hi.cloned(),
            },
        )
    };
    for ranges in [
        vec![range(Some(&k2), Some(&k1))],
        vec![range(Some(&k1), Some(&k1))],
        vec![range(Some(&k2), None), range(Some(&k1), Some(&k2))],
        vec![range(None, Some(&k2)), range(Some(&k1), None)],
        vec![range(None, None), range(Some(&k1), None)],
    ] {
        let bytes = Request { ranges }.encode();
        assert_eq!(
            Request::decode(&bytes, &limits),
            Err(AntiEntropyError::Unordered)
        );
    }
    let adjacent = Request {
        ranges: vec![range(None, Some(&k1)), range(Some(&k1), None)],
    };
    assert!(Request::decode(&adjacent.encode(), &limits).is_ok());

    let mut bad = range(Some(&k1), None);
    bad.range.lo = Some(Key {
        namespace: "Upper".into(),
        key: Vec::new(),
        field: None,
    });
    let bytes = Request { ranges: vec![bad] }.encode();
    assert!(matches!(
        Request::decode(&bytes, &limits),
        Err(AntiEntropyError::Entry(EntryError::Namespace(_)))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn anti_entropy_no_bytes_panic_the_decoders(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let limits = Limits::default();
        let _ = Request::decode(&bytes, &limits);
        let _ = Answer::decode(&bytes, &limits);
        let versioned = [&[1u8][..], &bytes].concat();
        let _ = Request::decode(&versioned, &limits);
        let _ = Answer::decode(&versioned, &limits);
    }

    #[test]
    fn anti_entropy_altered_answers_never_panic_the_decoder(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        static REPLY: LazyLock<Vec<u8>> = LazyLock::new(|| sample_answer().encode());
        let mut bytes = REPLY.clone();
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let _ = Answer::decode(&bytes, &Limits::default());
    }
}
