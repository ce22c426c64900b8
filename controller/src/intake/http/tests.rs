use super::*;
use crate::intake::quotas::Quotas;
use r1_crds::api::outcome::{Action, DeleteAction};
use r1_crds::manifest::Kind;
use r1_ctl::remote::{Client, RemoteError};
use r1_protocol::Identity;
use reqwest::Method;

const ESCROW: &str = include_str!("../../../../crds/examples/escrow.yaml");
const PROJECT: &str = include_str!("../../../../crds/examples/project.yaml");

struct Server {
    _dir: tempfile::TempDir,
    url: String,
    state: ApiState,
}

async fn start() -> Server {
    start_with(None).await
}

async fn start_with(info: Option<ApiInfo>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let mut state = ApiState::new(store, Catalogue::builtin().unwrap());
    if let Some(info) = info {
        state = state.with_info(info);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state.clone()));
    Server {
        _dir: dir,
        url,
        state,
    }
}

fn hardhat(account: u8) -> Identity {
    let secret = match account {
        1 => "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        _ => "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    };
    Identity::from_secret(&r1_protocol::hex::decode(secret).unwrap()).unwrap()
}

fn refused(result: Result<impl std::fmt::Debug, RemoteError>) -> (u16, ErrorBody) {
    match result {
        Err(RemoteError::Refused { status, body }) => (status, body),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn health_needs_no_signature() {
    let server = start().await;
    let response = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: Health = response.json().await.unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.resource_version, 0);
    let response = reqwest::get(format!("{}/nowhere", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn info_tells_the_chain_without_a_signature() {
    let info = ApiInfo {
        oracle: hardhat(2).address(),
        chain_id: 31337,
        poai_manager: Address::repeat_byte(0xab),
        epoch_seconds: 60,
        genesis_unix: 1_700_000_000,
    };
    let server = start_with(Some(info)).await;
    let response = reqwest::get(format!("{}/v1/info", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "oracle": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "chainId": 31337,
            "poaiManager": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",
            "epochSeconds": 60,
            "genesisUnix": 1_700_000_000u64,
        })
    );
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    assert_eq!(csp.info().await.unwrap(), info);
}

#[tokio::test]
async fn info_without_a_chain_is_503_with_a_reason() {
    let server = start().await;
    let response = reqwest::get(format!("{}/v1/info", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error, NO_CHAIN);
    assert!(
        body.reason.contains("no chain configured"),
        "{}",
        body.reason
    );
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    let (status, body) = refused(csp.info().await);
    assert_eq!((status, body.error.as_str()), (503, NO_CHAIN));
}

#[tokio::test]
async fn unsigned_requests_get_401_with_a_reason() {
    let server = start().await;
    let http = reqwest::Client::new();
    for (method, path) in [
        (Method::GET, "/v1/djob"),
        (Method::POST, "/v1/apply"),
        (Method::DELETE, "/v1/djob/default/x"),
        (Method::GET, "/v1/nonsense"),
    ] {
        let response = http
            .request(method.clone(), format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.error, "unsigned");
        assert!(body.reason.contains("x-r1-address"), "{}", body.reason);
    }
}

#[tokio::test]
async fn apply_get_list_delete_over_http() {
    let server = start().await;
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    let applied = csp.apply(ESCROW).await.unwrap();
    assert_eq!(applied[0].action, Action::Created);
    let key = ObjectKey::new(Kind::Escrow, "default", "acme-escrow");
    assert_eq!(csp.get(&key).await.unwrap().metadata.generation, 1);
    for kind in ["escrows", "esc", "escrow", "Escrow"] {
        let url = csp.url(&["v1", kind], &[("namespace", "default")]).unwrap();
        let raw = csp.send(Method::GET, url, Vec::new()).await.unwrap();
        assert_eq!(raw.status, 200, "{kind}");
        let list: ListResponse = serde_json::from_slice(&raw.body).unwrap();
        assert_eq!(list.items.len(), 1, "{kind}");
    }
    assert_eq!(csp.list(Kind::Escrow, None).await.unwrap().len(), 1);
    assert!(
        csp.list(Kind::Job, Some("default"))
            .await
            .unwrap()
            .is_empty()
    );

    let (status, body) = refused(csp.get(&ObjectKey::new(Kind::Job, "default", "nope")).await);
    assert_eq!((status, body.error.as_str()), (404, "not_found"));
    let url = csp.url(&["v1", "pods"], &[]).unwrap();
    let raw = csp.send(Method::GET, url, Vec::new()).await.unwrap();
    assert_eq!(raw.status, 404);
    assert!(String::from_utf8_lossy(&raw.body).contains("unknown_kind"));

    assert_eq!(
        csp.delete(&key).await.unwrap().action,
        DeleteAction::Requested
    );
    assert!(
        server
            .state
            .store()
            .get(&key)
            .unwrap()
            .unwrap()
            .metadata
            .deletion_requested
    );
    let (status, body) = refused(csp.apply(ESCROW).await);
    assert_eq!((status, body.error.as_str()), (409, "conflict"));
}

#[tokio::test]
async fn a_list_holds_only_what_its_label_selector_selects() {
    let server = start().await;
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    let labelled = |name: &str, tier: &str| {
        PROJECT.replace(
            "  name: hello\n",
            &format!("  name: {name}\n  labels:\n    tier: {tier}\n"),
        )
    };
    let set = [
        labelled("web", "front"),
        labelled("db", "back"),
        PROJECT.into(),
    ];
    csp.apply(&set.join("\n---\n")).await.unwrap();
    let names = |selector: Option<&'static str>| {
        let csp = &csp;
        async move {
            csp.list_selected(Kind::Project, Some("default"), selector)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.metadata.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(None).await, ["db", "hello", "web"]);
    assert_eq!(names(Some("tier=front")).await, ["web"]);
    assert_eq!(names(Some("tier!=front")).await, ["db", "hello"]);
    assert_eq!(names(Some("tier")).await, ["db", "web"]);
    assert_eq!(names(Some("!tier")).await, ["hello"]);
    assert_eq!(
        names(Some("tier=front,tier=back")).await,
        Vec::<String>::new()
    );
    let (status, body) = refused(
        csp.list_selected(Kind::Project, None, Some("tier in (front)"))
            .await,
    );
    assert_eq!((status, body.error.as_str()), (400, "invalid"));
    assert!(body.reason.contains("set-based"), "{}", body.reason);
}

#[tokio::test]
async fn refusals_carry_their_status_and_paths() {
    let server = start().await;
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    let (status, body) = refused(csp.apply(&ESCROW.replace("31337", "0")).await);
    assert_eq!((status, body.error.as_str()), (422, "invalid"));
    assert_eq!(body.errors[0].path, "spec.chainId");
    assert_eq!(
        body.errors[0].resource.as_deref(),
        Some("Escrow default/acme-escrow")
    );

    let url = csp.url(&["v1", "apply"], &[]).unwrap();
    let raw = csp.send(Method::POST, url, vec![0xff, 0xfe]).await.unwrap();
    assert_eq!(raw.status, 400);

    csp.apply(ESCROW).await.unwrap();
    let other = Client::new(&server.url, hardhat(2)).unwrap();
    let (status, body) = refused(
        other
            .get(&ObjectKey::new(Kind::Escrow, "default", "acme-escrow"))
            .await,
    );
    // Another CSP's object answers exactly like a missing one.
    assert_eq!((status, body.error.as_str()), (404, "not_found"));
    assert_eq!(body.reason, "Escrow default/acme-escrow not found");
    let (_, missing) = refused(
        other
            .get(&ObjectKey::new(Kind::Escrow, "default", "nope"))
            .await,
    );
    assert_eq!(
        serde_json::to_value(&body)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        serde_json::to_value(&missing)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    assert!(other.list(Kind::Escrow, None).await.unwrap().is_empty());
    assert!(
        other
            .list(Kind::Escrow, Some("default"))
            .await
            .unwrap()
            .is_empty()
    );
    let escrow = ESCROW.replace(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    );
    let (status, body) = refused(other.apply(&escrow).await);
    assert_eq!((status, body.error.as_str()), (403, "forbidden"));
    assert_eq!(body.reason, "namespace default is not yours");
}

/// Nobody may claim a namespace.
#[derive(Debug)]
struct NoClaims;

impl NamespaceClaims for NoClaims {
    fn may_claim(
        &self,
        _signer: Address,
    ) -> futures_util::future::BoxFuture<'_, Result<bool, String>> {
        Box::pin(async { Ok(false) })
    }
}

async fn start_state(state: ApiState) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state));
    url
}

#[tokio::test]
async fn claiming_needs_the_policy_and_quotas_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let state = ApiState::new(store.clone(), Catalogue::builtin().unwrap());
    let url = start_state(state.clone().with_claims(Arc::new(NoClaims))).await;
    let csp = Client::new(&url, hardhat(1)).unwrap();
    let (status, body) = refused(csp.apply(ESCROW).await);
    assert_eq!((status, body.error.as_str()), (403, "forbidden"));
    assert_eq!(body.reason, "namespace default is not yours");
    assert!(store.list_all(None).unwrap().is_empty());

    let url = start_state(state.with_quotas(Quotas {
        objects: 1,
        namespaces: 1,
    }))
    .await;
    let csp = Client::new(&url, hardhat(1)).unwrap();
    csp.apply(ESCROW).await.unwrap();
    let (status, body) = refused(csp.apply(&ESCROW.replace("acme-escrow", "second")).await);
    assert_eq!((status, body.error.as_str()), (403, "quota_exceeded"));
    assert!(
        body.reason.contains("objects quota is 1"),
        "{}",
        body.reason
    );
}

#[tokio::test]
async fn rates_are_limited_per_signer_and_per_failing_peer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let rate = Rate {
        burst: 2,
        per_second: 0.5,
    };
    let state = ApiState::new(store, Catalogue::builtin().unwrap()).with_rate_limits(RateLimits {
        per_signer: rate,
        failures_per_peer: rate,
    });
    let url = start_state(state).await;
    let csp = Client::new(&url, hardhat(1)).unwrap();
    csp.list(Kind::Escrow, None).await.unwrap();
    csp.list(Kind::Escrow, None).await.unwrap();
    let path = "/v1/escrows";
    let signed = api_auth::sign(&hardhat(1), "GET", path, now_ms(), b"").unwrap();
    let response = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header(api_auth::ADDRESS_HEADER, signed.address)
        .header(api_auth::TIMESTAMP_HEADER, signed.timestamp)
        .header(api_auth::SIGNATURE_HEADER, signed.signature)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error, RATE_LIMITED);
    // Another key has its own budget.
    Client::new(&url, hardhat(2))
        .unwrap()
        .list(Kind::Escrow, None)
        .await
        .unwrap();

    let unsigned = || async {
        reqwest::get(format!("{url}/v1/escrows"))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(unsigned().await, 401);
    assert_eq!(unsigned().await, 401);
    assert_eq!(unsigned().await, 429, "the peer's failures are limited");
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_delete_cannot_be_replayed() {
    let server = start().await;
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    csp.apply(ESCROW).await.unwrap();
    let key = ObjectKey::new(Kind::Escrow, "default", "acme-escrow");
    let url = csp.object_url(&key).unwrap();
    let at = r1_protocol::now_ms();
    let first = csp
        .send_at(Method::DELETE, url.clone(), Vec::new(), at)
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let replay = csp
        .send_at(Method::DELETE, url.clone(), Vec::new(), at)
        .await
        .unwrap();
    assert_eq!(replay.status, 401);
    let body: ErrorBody = serde_json::from_slice(&replay.body).unwrap();
    assert_eq!(body.error, "replayed");
    // A freshly signed delete is fine (and idempotent).
    let again = csp
        .send_at(Method::DELETE, url, Vec::new(), at + 1)
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    // Replaying a read is harmless and allowed.
    let get = csp
        .url(&["v1", "esc", "default", "acme-escrow"], &[])
        .unwrap();
    for _ in 0..2 {
        let raw = csp
            .send_at(Method::GET, get.clone(), Vec::new(), at)
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
    }
}

#[tokio::test]
async fn bodies_are_bounded() {
    let server = start().await;
    let csp = Client::new(&server.url, hardhat(1)).unwrap();
    let url = csp.url(&["v1", "apply"], &[]).unwrap();
    let raw = csp
        .send(Method::POST, url, vec![b'#'; MAX_BODY_BYTES + 1])
        .await
        .unwrap();
    assert_eq!(raw.status, 413);
}
