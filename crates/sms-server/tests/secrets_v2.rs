//! The secrets API v2 over HTTP (docs/secrets-api-v2.md): the attacker's requests (replayed,
//! sent to another SMS, expired, for another chain, tampered, by someone else), check-and-set
//! under concurrency, deletes, lists, the two doors (v1 and v2) on the same secrets, replicas
//! on one PostgreSQL, and the JavaScript example signed by ethers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sms_client::v2::SecretRef;
use sms_client::{ClientError, Web2Write};
use sms_core::secret::SecretKind;
use sms_core::secret_operation::{
    Operation, OperationMessage, ServiceDomain, SignedRequest, value_hash,
};
use sms_core::{Address, B256, challenge, signature::sign_eip191};
use sms_server::ServerConfig;
use sms_testkit::server::TestServer;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn requester(owner: &PrivateKeySigner, name: &str) -> SecretRef {
    SecretRef {
        kind: SecretKind::Requester,
        owner: owner.address(),
        name: name.to_owned(),
    }
}

/// A signed put of `value` at `expected` for `domain`, valid for two minutes.
fn put_request(
    signer: &PrivateKeySigner,
    domain: &ServiceDomain,
    secret: &SecretRef,
    value: &str,
    expected: u64,
) -> SignedRequest {
    let message = OperationMessage::new(
        Operation::Put,
        secret.kind,
        secret.owner,
        &secret.name,
        Some(value),
        expected,
    )
    .valid_for(now(), 120);
    SignedRequest::signed(signer, domain, message, Some(value.to_owned()))
}

/// Posts a raw JSON body to a v2 route: status and answer.
async fn post(server: &TestServer, route: &str, body: &Value) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            &format!("/v2/secrets/{route}"),
            None,
            Some(body.to_string().as_bytes()),
        )
        .await
}

async fn send(server: &TestServer, request: &SignedRequest) -> (StatusCode, Value) {
    post(
        server,
        &request.message.operation,
        &serde_json::to_value(request).unwrap(),
    )
    .await
}

/// Asserts a coded refusal: status, code and field.
fn assert_refused(answer: &(StatusCode, Value), status: StatusCode, code: &str, field: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert_eq!(answer.1["error"]["field"], field, "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn requester_exists_v1(server: &TestServer, owner: Address, name: &str) -> bool {
    let path = format!("/requesters/{owner}/secrets/{name}");
    match server.call(Method::HEAD, &path, None, None).await.0 {
        StatusCode::NO_CONTENT => true,
        StatusCode::NOT_FOUND => false,
        other => panic!("HEAD {path}: {other}"),
    }
}

#[tokio::test]
async fn put_show_list_delete_and_recreate() {
    let server = TestServer::dev().await;
    let client = server.client();
    let alice = PrivateKeySigner::random();
    let secret = requester(&alice, "alpha");

    let created = client.v2_put(&alice, &secret, "one", 0).await.unwrap();
    assert_eq!((created.name.as_str(), created.version), ("alpha", 1));
    assert!(requester_exists_v1(&server, alice.address(), "alpha").await);

    // Create-only on an existing secret, then a stale version: 409 with the current version.
    for expected in [0, 7] {
        match client.v2_put(&alice, &secret, "x", expected).await {
            Err(ClientError::Refused {
                status,
                code,
                current_version,
                ..
            }) => {
                assert_eq!(
                    (status, code.as_str(), current_version),
                    (StatusCode::CONFLICT, "VERSION_CONFLICT", Some(1))
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let updated = client.v2_put(&alice, &secret, "two", 1).await.unwrap();
    assert_eq!(updated.version, 2);

    let shown = client.v2_show(&alice, &secret).await.unwrap();
    assert_eq!((shown.version, shown.kind), (2, SecretKind::Requester));
    assert!(shown.created_at <= shown.updated_at && shown.key_id >= 1);

    let deleted = client.v2_delete(&alice, &secret, 2).await.unwrap();
    assert_eq!(deleted.version, 3);
    assert!(!requester_exists_v1(&server, alice.address(), "alpha").await);
    match client.v2_show(&alice, &secret).await {
        Err(ClientError::Refused { status, code, .. }) => {
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            );
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let listed = client
        .v2_list(&alice, SecretKind::Requester, alice.address())
        .await
        .unwrap();
    assert!(listed.secrets.is_empty());

    // The name can be created again; versions keep growing.
    let again = client.v2_put(&alice, &secret, "three", 0).await.unwrap();
    assert_eq!(again.version, 4);
    let listed = client
        .v2_list(&alice, SecretKind::Requester, alice.address())
        .await
        .unwrap();
    assert_eq!(listed.secrets.len(), 1);
    assert_eq!(
        (listed.secrets[0].name.as_str(), listed.secrets[0].version),
        ("alpha", 4)
    );
}

#[tokio::test]
async fn a_captured_request_replayed_is_refused_even_after_a_restart() {
    let mut server = TestServer::dev().await;
    let alice = PrivateKeySigner::random();
    let domain = server.client().v2_domain().await.unwrap();
    let secret = requester(&alice, "result-key");
    let captured = put_request(&alice, &domain, &secret, "v1", 0);
    assert_eq!(send(&server, &captured).await.0, StatusCode::OK);
    // Delete it so that the replay would succeed if only the version guarded it.
    server.client().v2_delete(&alice, &secret, 0).await.unwrap();
    let replay = send(&server, &captured).await;
    assert_refused(
        &replay,
        StatusCode::UNAUTHORIZED,
        "NONCE_REUSED",
        "message.nonce",
    );
    server.restart().await;
    let replay = send(&server, &captured).await;
    assert_refused(
        &replay,
        StatusCode::UNAUTHORIZED,
        "NONCE_REUSED",
        "message.nonce",
    );
    assert!(!requester_exists_v1(&server, alice.address(), "result-key").await);
}

#[tokio::test]
async fn a_signature_for_another_sms_is_refused_there() {
    let first = TestServer::dev().await;
    let second = TestServer::dev().await;
    let d1 = first.client().v2_domain().await.unwrap();
    let d2 = second.client().v2_domain().await.unwrap();
    assert_eq!(d1.chain_id, d2.chain_id);
    assert_ne!(d1.instance, d2.instance, "two identities, two instance ids");
    assert_eq!(
        d1.instance,
        ServiceDomain::instance_of_identity(&first.server().identity.key_id)
    );

    let alice = PrivateKeySigner::random();
    let request = put_request(&alice, &d1, &requester(&alice, "k"), "v", 0);
    let answer = send(&second, &request).await;
    assert_refused(
        &answer,
        StatusCode::UNAUTHORIZED,
        "WRONG_DOMAIN",
        "domain.verifyingContract",
    );
    // Lying about the domain does not help: the signature does not hold under the real one.
    let mut relabelled = request.clone();
    relabelled.domain = d2.claim();
    let answer = send(&second, &relabelled).await;
    assert_refused(
        &answer,
        StatusCode::UNAUTHORIZED,
        "BAD_SIGNATURE",
        "signature",
    );
    assert!(!requester_exists_v1(&second, alice.address(), "k").await);
    // The first SMS, which it was signed for, accepts it.
    assert_eq!(send(&first, &request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn expired_far_future_wrong_chain_tampered_and_impostor_requests_are_refused() {
    let server = TestServer::dev().await;
    let domain = server.client().v2_domain().await.unwrap();
    let alice = PrivateKeySigner::random();
    let secret = requester(&alice, "k");
    let sign_with = |edit: &dyn Fn(&mut OperationMessage)| {
        let mut message = put_request(&alice, &domain, &secret, "v", 0).message;
        edit(&mut message);
        SignedRequest::signed(&alice, &domain, message, Some("v".into()))
    };

    let expired = sign_with(&|m| m.expiry = now() - 1);
    assert_refused(
        &send(&server, &expired).await,
        StatusCode::UNAUTHORIZED,
        "SIGNATURE_EXPIRED",
        "message.expiry",
    );
    let far = sign_with(&|m| m.expiry = now() + 3600);
    assert_refused(
        &send(&server, &far).await,
        StatusCode::UNAUTHORIZED,
        "SIGNATURE_EXPIRED",
        "message.expiry",
    );

    let other_chain = ServiceDomain {
        chain_id: domain.chain_id + 1,
        ..domain
    };
    let message = put_request(&alice, &domain, &secret, "v", 0).message;
    let wrong_chain = SignedRequest::signed(&alice, &other_chain, message, Some("v".into()));
    assert_refused(
        &send(&server, &wrong_chain).await,
        StatusCode::UNAUTHORIZED,
        "WRONG_CHAIN",
        "domain.chainId",
    );

    // A valid request whose value was swapped in flight.
    let mut swapped = put_request(&alice, &domain, &secret, "v", 0);
    swapped.value = Some("attacker's value".into());
    assert_refused(
        &send(&server, &swapped).await,
        StatusCode::UNAUTHORIZED,
        "VALUE_NOT_SIGNED",
        "value",
    );
    // A valid request whose expected version was changed in flight.
    let mut tampered = put_request(&alice, &domain, &secret, "v", 0);
    tampered.message.expected_version = 5;
    assert_refused(
        &send(&server, &tampered).await,
        StatusCode::UNAUTHORIZED,
        "BAD_SIGNATURE",
        "signature",
    );
    // Mallory signs a write to Alice's secrets with her own key.
    let mallory = PrivateKeySigner::random();
    let impostor = put_request(&mallory, &domain, &secret, "v", 0);
    assert_refused(
        &send(&server, &impostor).await,
        StatusCode::UNAUTHORIZED,
        "NOT_OWNER",
        "message.owner",
    );
    // ... or claims to be Alice.
    let mut claimed = impostor.clone();
    claimed.signer = alice.address();
    assert_refused(
        &send(&server, &claimed).await,
        StatusCode::UNAUTHORIZED,
        "BAD_SIGNATURE",
        "signature",
    );
    assert!(!requester_exists_v1(&server, alice.address(), "k").await);
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    let server = TestServer::dev().await;
    let domain = server.client().v2_domain().await.unwrap();
    let alice = PrivateKeySigner::random();
    let good = put_request(&alice, &domain, &requester(&alice, "k"), "v", 0);
    let good_json = serde_json::to_value(&good).unwrap();

    let raw = server
        .call(Method::POST, "/v2/secrets/put", None, Some(b"not json"))
        .await;
    assert_eq!(raw.0, StatusCode::BAD_REQUEST);
    assert_eq!(raw.1["error"]["code"], "MALFORMED_REQUEST");
    let mut extra = good_json.clone();
    extra["message"]["surprise"] = json!(1);
    let answer = post(&server, "put", &extra).await;
    assert_eq!(
        answer.1["error"]["code"], "MALFORMED_REQUEST",
        "{}",
        answer.1
    );
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("surprise")
    );

    // A put signed correctly but sent to the delete route.
    let answer = post(&server, "delete", &good_json).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
        "message.operation",
    );

    let sign = |kind: SecretKind, name: &str, value: Option<&str>, op: Operation| {
        let message =
            OperationMessage::new(op, kind, alice.address(), name, value, 0).valid_for(now(), 60);
        SignedRequest::signed(&alice, &domain, message, value.map(str::to_owned))
    };
    let cases = [
        (
            sign(
                SecretKind::Requester,
                "bad name!",
                Some("v"),
                Operation::Put,
            ),
            StatusCode::BAD_REQUEST,
            "message.name",
        ),
        (
            sign(SecretKind::Web3, "named", Some("v"), Operation::Put),
            StatusCode::BAD_REQUEST,
            "message.name",
        ),
        (
            sign(SecretKind::Requester, "k", None, Operation::Put),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            sign(SecretKind::Requester, "k", Some(""), Operation::Put),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            sign(
                SecretKind::Requester,
                "k",
                Some(&"x".repeat(4097)),
                Operation::Put,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "value",
        ),
        (
            sign(SecretKind::Requester, "k", Some("v"), Operation::Show),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            sign(SecretKind::Requester, "x", None, Operation::List),
            StatusCode::BAD_REQUEST,
            "message.name",
        ),
    ];
    for (request, status, field) in cases {
        let answer = send(&server, &request).await;
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["error"]["field"], field, "{}", answer.1);
    }
    let mut bad_kind = good_json.clone();
    bad_kind["message"]["kind"] = json!("vault");
    // The kind is part of the signed message: changing it breaks the signature first.
    let answer = post(&server, "put", &bad_kind).await;
    assert_refused(
        &answer,
        StatusCode::UNAUTHORIZED,
        "BAD_SIGNATURE",
        "signature",
    );
}

#[tokio::test]
async fn concurrent_check_and_set_has_exactly_one_winner() {
    let server = TestServer::dev().await;
    let client = server.client();
    let alice = PrivateKeySigner::random();
    let secret = requester(&alice, "counter");
    client.v2_put(&alice, &secret, "0", 0).await.unwrap();
    let attempts = (0..16).map(|i| {
        let client = client.clone();
        let alice = alice.clone();
        let secret = secret.clone();
        tokio::spawn(async move { client.v2_put(&alice, &secret, &format!("w{i}"), 1).await })
    });
    let mut winners = Vec::new();
    for (i, attempt) in attempts.enumerate() {
        match attempt.await.unwrap() {
            Ok(written) => winners.push((i, written.version)),
            Err(ClientError::Refused {
                status,
                current_version,
                ..
            }) => assert_eq!((status, current_version), (StatusCode::CONFLICT, Some(2))),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].1, 2);
}

#[tokio::test]
async fn lists_show_names_and_versions_only_and_only_to_the_owner() {
    let server = TestServer::dev().await;
    let client = server.client();
    let alice = PrivateKeySigner::random();
    let bob = PrivateKeySigner::random();
    client
        .v2_put(&alice, &requester(&alice, "a1"), "alice-value-1", 0)
        .await
        .unwrap();
    client
        .v2_put(&alice, &requester(&alice, "a2"), "alice-value-2", 0)
        .await
        .unwrap();
    client
        .push_web2_secret(&alice, "Mixed-Case", "alice-web2-value", Web2Write::Create)
        .await
        .unwrap();
    client
        .v2_put(&bob, &requester(&bob, "b1"), "bob-value", 0)
        .await
        .unwrap();

    let domain = client.v2_domain().await.unwrap();
    let list = |signer: &PrivateKeySigner, kind: SecretKind, owner: Address| {
        let message =
            OperationMessage::new(Operation::List, kind, owner, "", None, 0).valid_for(now(), 60);
        SignedRequest::signed(signer, &domain, message, None)
    };
    let (status, answer) = send(
        &server,
        &list(&alice, SecretKind::Requester, alice.address()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = answer["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a2"]);
    let text = answer.to_string();
    // No value, and nothing of Bob's (names are compared whole: addresses are hex).
    assert!(!text.contains("alice-value") && !text.contains("bob-value"));
    assert!(!text.contains("\"b1\""));
    let (_, web2) = send(&server, &list(&alice, SecretKind::Web2, alice.address())).await;
    assert_eq!(web2["secrets"][0]["name"], "mixed-case");
    assert_eq!(web2["secrets"][0]["version"], 1);
    assert!(!web2.to_string().contains("alice-web2-value"));

    // Bob asks for Alice's list with his own signature: refused, nothing shown.
    let answer = send(&server, &list(&bob, SecretKind::Requester, alice.address())).await;
    assert_refused(
        &answer,
        StatusCode::UNAUTHORIZED,
        "NOT_OWNER",
        "message.owner",
    );
    assert!(answer.1.get("secrets").is_none() && !answer.1.to_string().contains("\"a1\""));
    let (_, bobs) = send(&server, &list(&bob, SecretKind::Requester, bob.address())).await;
    assert_eq!(bobs["secrets"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn app_secrets_and_dataset_keys_belong_to_the_on_chain_owner() {
    let server = TestServer::dev().await;
    let client = server.client();
    let owner = PrivateKeySigner::random();
    let mallory = PrivateKeySigner::random();
    let deploy = |kind: &'static str| {
        let server = &server;
        let owner = owner.address();
        async move {
            let body = json!({ "owner": owner, "multiaddr": "/ipfs/Qm", "checksum": format!("0x{}", "ab".repeat(32)) });
            let (status, answer) = server
                .call(
                    Method::POST,
                    &format!("/dev/{kind}"),
                    None,
                    Some(body.to_string().as_bytes()),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["address"]
                .as_str()
                .unwrap()
                .parse::<Address>()
                .unwrap()
        }
    };
    let app = deploy("apps").await;
    let dataset = deploy("datasets").await;
    let app_secret = SecretRef {
        kind: SecretKind::AppDeveloper,
        owner: app,
        name: String::new(),
    };
    let dataset_key = SecretRef {
        kind: SecretKind::Web3,
        owner: dataset,
        name: String::new(),
    };

    // v1 push (insert-once), then a v2 update: the app secret can now be changed.
    client
        .push_app_secret(&owner, app, "v1-app-secret")
        .await
        .unwrap();
    let updated = client
        .v2_put(&owner, &app_secret, "v2-app-secret", 1)
        .await
        .unwrap();
    assert_eq!((updated.version, updated.name.as_str()), (2, ""));
    assert!(matches!(
        client.push_app_secret(&owner, app, "again").await,
        Err(ClientError::AlreadyExists { .. })
    ));
    client.v2_put(&owner, &dataset_key, "key", 0).await.unwrap();
    assert!(client.dataset_secret_exists(dataset).await.unwrap());

    for secret in [&app_secret, &dataset_key] {
        match client.v2_put(&mallory, secret, "evil", 0).await {
            Err(ClientError::Refused { status, code, .. }) => {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "NOT_OWNER")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(client.v2_delete(&mallory, secret, 0).await.is_err());
        assert!(client.v2_show(&mallory, secret).await.is_err());
    }
    let listed = client
        .v2_list(&owner, SecretKind::AppDeveloper, app)
        .await
        .unwrap();
    assert_eq!(listed.secrets.len(), 1);
    assert_eq!(listed.secrets[0].version, 2);
    // An address that is no app: refused, named.
    let unknown = SecretRef {
        owner: Address::repeat_byte(0x77),
        ..app_secret
    };
    match client.v2_put(&owner, &unknown, "v", 0).await {
        Err(ClientError::Refused { code, message, .. }) => {
            assert_eq!(code, "NOT_OWNER");
            assert!(message.contains("is not an app known to"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn v1_writes_and_v2_writes_share_one_version() {
    let server = TestServer::dev().await;
    let client = server.client();
    let alice = PrivateKeySigner::random();
    client
        .push_web2_secret(&alice, "token", "a", Web2Write::Create)
        .await
        .unwrap();
    client
        .push_web2_secret(&alice, "token", "b", Web2Write::Update)
        .await
        .unwrap();
    let web2 = SecretRef {
        kind: SecretKind::Web2,
        owner: alice.address(),
        name: "TOKEN".into(),
    };
    assert_eq!(client.v2_show(&alice, &web2).await.unwrap().version, 2);
    client.v2_put(&alice, &web2, "c", 2).await.unwrap();
    client
        .push_web2_secret(&alice, "token", "d", Web2Write::Update)
        .await
        .unwrap();
    assert_eq!(client.v2_show(&alice, &web2).await.unwrap().version, 4);
    // A v1 requester push after a v2 delete re-creates the secret with the next version.
    let secret = requester(&alice, "r");
    client.v2_put(&alice, &secret, "x", 0).await.unwrap();
    client.v2_delete(&alice, &secret, 1).await.unwrap();
    let path = format!("/requesters/{}/secrets/r", alice.address());
    let digest = challenge::named_secret(alice.address().as_slice(), "r", b"y");
    let (status, _) = server
        .call(
            Method::POST,
            &path,
            Some(sign_eip191(&alice, &digest).to_hex()),
            Some(b"y"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client.v2_show(&alice, &secret).await.unwrap().version, 3);
}

#[tokio::test]
async fn the_instance_id_can_be_set_and_the_domain_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.instance_id = Some(Address::repeat_byte(0x42));
    config.chain.chain_id = Some(65535);
    let server = TestServer::with_config(config, Some(dir)).await;
    let (status, domain) = server.call(Method::GET, "/v2/domain", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        domain,
        json!({
            "name": "iExec SMS", "version": "2", "chainId": 65535,
            "verifyingContract": Address::repeat_byte(0x42),
        })
    );
}

/// Replicas on one PostgreSQL share the domain (the identity is in the database), the nonces
/// and the versions.
#[tokio::test]
async fn replicas_on_one_database_share_domain_nonces_and_versions() {
    let url = sms_testkit::postgres::fresh_database_url().await;
    // Both replicas need the same master key: the first one creates it.
    let key_dir = tempfile::tempdir().unwrap();
    let master_key = key_dir.path().join("master.key");
    let start = || {
        let url = url.clone();
        let master_key = master_key.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
            config.database_url = Some(url);
            config.master_key_file = Some(master_key);
            TestServer::with_config(config, Some(dir)).await
        }
    };
    let one = start().await;
    let two = start().await;
    let domain = one.client().v2_domain().await.unwrap();
    assert_eq!(domain, two.client().v2_domain().await.unwrap());

    let alice = PrivateKeySigner::random();
    let secret = requester(&alice, "shared");
    let request = put_request(&alice, &domain, &secret, "v", 0);
    assert_eq!(send(&one, &request).await.0, StatusCode::OK);
    assert_refused(
        &send(&two, &request).await,
        StatusCode::UNAUTHORIZED,
        "NONCE_REUSED",
        "message.nonce",
    );

    // Check-and-set across replicas: one winner.
    let requests: Vec<SignedRequest> = (0..8)
        .map(|i| put_request(&alice, &domain, &secret, &format!("w{i}"), 1))
        .collect();
    let answers = put_concurrently(&one, &two, &requests).await;
    let ok = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    assert_eq!(ok, 1, "{answers:?}");
    for answer in answers.iter().filter(|a| a.0 != StatusCode::OK) {
        assert_eq!(answer.0, StatusCode::CONFLICT, "{}", answer.1);
        assert_eq!(answer.1["error"]["currentVersion"], 2);
    }
}

/// Sends the requests concurrently, alternating replicas.
async fn put_concurrently(
    one: &TestServer,
    two: &TestServer,
    requests: &[SignedRequest],
) -> Vec<(StatusCode, Value)> {
    let urls = [one.url(), two.url()];
    let tasks: Vec<_> = requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let url = format!("{}/v2/secrets/put", urls[i % 2]);
            let body = serde_json::to_vec(request).unwrap();
            tokio::spawn(async move {
                let answer = reqwest::Client::new()
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status();
                (status, answer.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// The worked example of docs/secrets-api-v2.md, run with node and ethers (an independent
/// EIP-712 implementation): the SMS accepts what ethers signs, and signs the same bytes itself.
#[tokio::test]
async fn the_javascript_example_signed_by_ethers_is_accepted() {
    let server = TestServer::dev().await;
    let alice = PrivateKeySigner::random();
    let tools = sms_testkit::chain::tools_dir();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples/secrets-v2-put.cjs");
    let output = tokio::process::Command::new("node")
        .arg(&example)
        .args(["from-ethers", "value signed by ethers"])
        .env("NODE_PATH", tools.join("node_modules"))
        .env("SMS_URL", server.url())
        .env(
            "PRIVATE_KEY",
            sms_core::hex::encode_prefixed(alice.credential().to_bytes()),
        )
        .output()
        .await
        .expect("node runs (installed with the chain tools: tools/chain/setup.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let request: SignedRequest = serde_json::from_str(lines.next().unwrap()).unwrap();
    let answer: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["version"], 1);
    // Deterministic signatures (RFC 6979): our signature of the same message is ethers' one.
    let domain = server.client().v2_domain().await.unwrap();
    let ours = SignedRequest::signed(
        &alice,
        &domain,
        request.message.clone(),
        request.value.clone(),
    );
    assert_eq!(ours.signature, request.signature.to_lowercase());
    assert_eq!(
        request.message.value_hash,
        value_hash(b"value signed by ethers")
    );
    assert_ne!(request.message.nonce, B256::ZERO);
    let shown = server
        .client()
        .v2_show(&alice, &requester(&alice, "from-ethers"))
        .await
        .unwrap();
    assert_eq!(shown.version, 1);
}

/// A store refusal answers in the v2 body like every other v2 refusal: with the audit log
/// refusing entries, a put is 503 `{"error": {"code": "AUDIT_LOG_UNAVAILABLE", ...}}` and
/// writes nothing.
#[tokio::test]
async fn a_store_refusal_answers_in_the_v2_body() {
    let server = TestServer::dev().await;
    let alice = PrivateKeySigner::random();
    let domain = server.client().v2_domain().await.unwrap();
    let secret = requester(&alice, "audited");
    server.audit_log_read_only(true).await;
    let (status, body) = send(&server, &put_request(&alice, &domain, &secret, "v", 0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "AUDIT_LOG_UNAVAILABLE", "{body}");
    assert_eq!(body["error"]["field"], Value::Null, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit")),
        "{body}"
    );
    server.audit_log_read_only(false).await;
    assert!(!requester_exists_v1(&server, alice.address(), "audited").await);
}
