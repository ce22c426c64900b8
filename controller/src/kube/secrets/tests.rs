//! Secret references found, sealed, kept when they still hold, and put in place.

#![allow(clippy::unwrap_used)] // test fixtures

use r1_protocol::sealed::public_key;

use super::*;

fn job(spec: Value) -> DynamicObject {
    DynamicObject {
        types: None,
        metadata: kube::api::ObjectMeta {
            name: Some("api".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        data: json!({ "spec": spec }),
    }
}

fn oracles(n: usize) -> (Vec<Identity>, Vec<(Address, [u8; PUBLIC_KEY_LEN])>) {
    let ids: Vec<Identity> = (0..n).map(|_| Identity::generate()).collect();
    let keys = ids.iter().map(|i| (i.address(), public_key(i))).collect();
    (ids, keys)
}

#[test]
fn env_refs_and_the_pull_secret_are_found() {
    let object = job(json!({
        "env": [
            {"name": "PLAIN", "value": "x"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            {"name": "SEALED", "valueFrom": {"sealed": {}}}
        ],
        "imagePullSecret": {"name": "registry"}
    }));
    assert_eq!(
        references(&object),
        [
            Reference {
                place: Place::Env("TOKEN".into()),
                secret: "api".into(),
                key: "token".into()
            },
            Reference {
                place: Place::PullSecret,
                secret: "registry".into(),
                key: ".dockerconfigjson".into()
            }
        ]
    );
    assert!(references(&job(json!({"env": [{"name": "A", "value": "b"}]}))).is_empty());
}

#[test]
fn a_seal_that_still_opens_to_the_value_for_the_same_oracles_is_kept() {
    let (ids, keys) = oracles(3);
    let me = &ids[0];
    let first = reuse_or_seal(b"hunter2", None, &keys, me, "shop").unwrap();
    assert_eq!(first.0.len(), 3);
    assert!(first.0.values().all(|copy| !copy.contains("hunter2")));
    let again = reuse_or_seal(b"hunter2", Some(&first), &keys, me, "shop").unwrap();
    assert_eq!(again, first, "an unchanged Secret keeps its seal");
    let changed = reuse_or_seal(b"hunter3", Some(&first), &keys, me, "shop").unwrap();
    assert_ne!(changed, first, "a changed value is sealed anew");
    let copies = changed.copies().unwrap();
    for id in &ids {
        assert_eq!(open_as_oracle(&copies, id, "shop").unwrap(), b"hunter3");
    }
    let (_, fewer) = oracles(0);
    let grown = reuse_or_seal(b"hunter2", Some(&first), &keys[..2], me, "shop").unwrap();
    assert_eq!(grown.0.len(), 2, "a changed oracle set is sealed anew");
    assert!(reuse_or_seal(b"x", None, &fewer, me, "shop").is_err());
    let elsewhere = reuse_or_seal(b"hunter2", Some(&first), &keys, me, "other").unwrap();
    assert_ne!(
        elsewhere, first,
        "a seal for another namespace is not reused"
    );
}

#[test]
fn sealed_values_take_the_place_of_the_references() {
    let (ids, keys) = oracles(1);
    let object = job(json!({
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            {"name": "PLAIN", "value": "x"}
        ],
        "imagePullSecret": {"name": "registry"}
    }));
    let token = reuse_or_seal(b"t", None, &keys, &ids[0], "shop").unwrap();
    let config = reuse_or_seal(b"{}", None, &keys, &ids[0], "shop").unwrap();
    let refs = references(&object);
    let sealed = vec![
        (refs[0].clone(), token.clone()),
        (refs[1].clone(), config.clone()),
    ];
    let out = with_sealed(&object, &sealed);
    let spec = &out.data["spec"];
    assert_eq!(spec["env"][0]["valueFrom"], json!({"sealed": token}));
    assert_eq!(spec["env"][1], json!({"name": "PLAIN", "value": "x"}));
    assert_eq!(spec["imagePullSecret"], json!({"sealed": config}));
    assert!(references(&out).is_empty());
    let example: Value =
        serde_yaml::from_str(include_str!("../../../../crds/examples/job-http.yaml")).unwrap();
    let mut typed = example["spec"].clone();
    typed["env"] = spec["env"].clone();
    typed["imagePullSecret"] = spec["imagePullSecret"].clone();
    let typed =
        Spec::from_json(r1_crds::manifest::Kind::Job, typed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored_seal(&typed, &Place::Env("TOKEN".into())),
        Some(&token)
    );
    assert_eq!(stored_seal(&typed, &Place::PullSecret), Some(&config));
    assert_eq!(stored_seal(&typed, &Place::TunnelToken), None);
}

#[test]
fn a_tunnel_s_token_secret_becomes_its_sealed_token() {
    let (ids, keys) = oracles(1);
    let object = job(json!({
        "provider": "cloudflare",
        "hostname": "shop.example.com",
        "tokenSecretRef": {"name": "cloudflare", "key": "token"}
    }));
    let refs = references(&object);
    assert_eq!(
        refs,
        [Reference {
            place: Place::TunnelToken,
            secret: "cloudflare".into(),
            key: "token".into()
        }]
    );
    let token = reuse_or_seal(b"cf-token", None, &keys, &ids[0], "shop").unwrap();
    let out = with_sealed(&object, &[(refs[0].clone(), token.clone())]);
    let spec = out.data["spec"].clone();
    assert_eq!(spec.get("tokenSecretRef"), None);
    assert_eq!(spec["sealedToken"], json!(token));
    assert!(references(&out).is_empty());
    let typed =
        Spec::from_json(r1_crds::manifest::Kind::Tunnel, spec).unwrap_or_else(|e| panic!("{e}"));
    let tunnel = typed.tunnel().unwrap();
    assert!(tunnel.token_secret_ref.is_none() && tunnel.sealed_token.is_some());
    assert_eq!(stored_seal(&typed, &Place::TunnelToken), Some(&token));
}

#[test]
fn a_secret_over_the_sealing_limit_is_refused_with_its_size() {
    let (ids, keys) = oracles(1);
    let big = vec![b'x'; r1_protocol::oracle_sealed::MAX_VALUE + 1];
    let refused = reuse_or_seal(&big, None, &keys, &ids[0], "shop").unwrap_err();
    assert_eq!(
        refused,
        OracleSealedError::TooLarge(r1_protocol::oracle_sealed::MAX_VALUE + 1)
    );
}
