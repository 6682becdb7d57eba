//! The malformed-request corpus (docs/fuzzing.md): hand-written hostile requests across every
//! route family of a `--dev` server (bad addresses, huge and empty bodies, bad JSON, bad
//! signatures, NUL bytes, long names, wrong content types, bad methods, bad query strings,
//! broken HTTP). Each must get a 4xx with the documented body of its family; a 5xx is a bug.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use reqwest::Method;
use serde_json::{Value, json};
use sms_core::secret::SecretKind;
use sms_core::secret_operation::{Operation, OperationMessage, ServiceDomain, SignedRequest};
use sms_core::signature::sign_eip191;
use sms_core::{Address, challenge};
use sms_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TASK: &str = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";

/// What the body of a refusal must be, per route family (docs/secrets-api.md,
/// docs/secrets-api-v2.md, docs/tee-sessions.md, docs/provisioning.md).
#[derive(Clone, Debug)]
enum Expect {
    /// `{"error": "<message>"}` whose message contains the text (secret API, dev, ops).
    Plain(&'static str),
    /// `{"error": ["<message>"]}` whose message contains the text (`/apps/*`, `/requesters/*`).
    List(&'static str),
    /// Exactly `{"error": "<CODE>"}` (TEE API).
    Tee(&'static str),
    /// `{"error": {"code": "<CODE>", "message", "field"}}` (v2).
    Coded(&'static str),
    /// `{"code": "<CODE>", "error": "<message>"}` (provisioning).
    Provision(&'static str),
    /// No body to check (HEAD, or a refusal of the HTTP layer).
    Status,
}

struct Case {
    name: String,
    method: Method,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    status: u16,
    expect: Expect,
}

fn case(
    name: impl Into<String>,
    method: Method,
    path: impl Into<String>,
    status: u16,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        status,
        expect,
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn auth(self, value: impl Into<Vec<u8>>) -> Self {
        self.header("authorization", value)
    }

    fn json(self) -> Self {
        self.header("content-type", "application/json")
    }
}

async fn send(http: &reqwest::Client, base: &str, case: &Case) -> (u16, Vec<u8>) {
    let mut request = http.request(case.method.clone(), format!("{base}{}", case.path));
    for (name, value) in &case.headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).expect("a sendable header value"),
        );
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap_or_default().to_vec())
}

/// Checks one answer; the failure text names the case.
fn check(case: &Case, status: u16, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    let fail = |why: &str| {
        Err(format!(
            "{} ({} {}): {why}; got {status} {}",
            case.name,
            case.method,
            case.path.chars().take(80).collect::<String>(),
            text.chars().take(300).collect::<String>()
        ))
    };
    if status >= 500 {
        return fail("a 5xx for a client's mistake");
    }
    if status != case.status {
        return fail(&format!("expected {}", case.status));
    }
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let ok = match &case.expect {
        Expect::Status => true,
        Expect::Plain(part) => json["error"].as_str().is_some_and(|m| m.contains(part)),
        Expect::List(part) => {
            json["error"].as_array().is_some_and(|a| a.len() == 1)
                && json["error"][0].as_str().is_some_and(|m| m.contains(part))
        }
        Expect::Tee(code) => json == json!({ "error": code }),
        Expect::Coded(code) => {
            json["error"]["code"] == *code
                && json["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
                && json["error"].get("field").is_some()
        }
        Expect::Provision(code) => json["code"] == *code && json["error"].is_string(),
    };
    if ok {
        Ok(())
    } else {
        fail(&format!("expected a body like {:?}", case.expect))
    }
}

/// An EIP-191 `Authorization` header over `digest` by `signer`.
fn signed(signer: &PrivateKeySigner, digest: &sms_core::B256) -> String {
    sign_eip191(signer, digest).to_hex()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A v2 request by `signer`, `edit`ed before signing.
fn v2_request(
    signer: &PrivateKeySigner,
    domain: &ServiceDomain,
    operation: Operation,
    name: &str,
    value: Option<&str>,
    edit: impl FnOnce(&mut OperationMessage),
) -> Value {
    let mut message = OperationMessage::new(
        operation,
        SecretKind::Requester,
        signer.address(),
        name,
        value,
        0,
    )
    .valid_for(now(), 120);
    edit(&mut message);
    serde_json::to_value(SignedRequest::signed(
        signer,
        domain,
        message,
        value.map(str::to_owned),
    ))
    .unwrap()
}

fn corpus(alice: &PrivateKeySigner, domain: &ServiceDomain) -> Vec<Case> {
    use Expect::*;
    let (get, head, post, put) = (Method::GET, Method::HEAD, Method::POST, Method::PUT);
    let a = alice.address();
    let long = "a".repeat(4096);
    let sig_short = "0x1234";
    let sig_not_hex = format!("0x{}", "zz".repeat(65));
    let sig_v0 = format!("0x{}00", "11".repeat(64));
    let sig_random = format!("0x{}1b", "11".repeat(64));
    let huge = vec![b'x'; 300 * 1024];
    let web2 =
        |owner: &str, name: &str| format!("/secrets/web2?ownerAddress={owner}&secretName={name}");
    let web2_sig = |name: &str, value: &[u8]| {
        signed(alice, &challenge::named_secret(a.as_slice(), name, value))
    };
    let req_path = |name: &str| format!("/requesters/{a}/secrets/{name}");
    let mut cases = Vec::new();

    // ---- /secrets/web3 (plain errors) ----------------------------------------------------
    for (label, query) in [
        ("no query", String::new()),
        ("empty address", "?secretAddress=".into()),
        ("short address", "?secretAddress=0x123".into()),
        ("no 0x", format!("?secretAddress={}", "12".repeat(20))),
        (
            "41 digits",
            format!("?secretAddress=0x{}1", "12".repeat(20)),
        ),
        ("not hex", format!("?secretAddress=0x{}", "zz".repeat(20))),
        ("NUL", "?secretAddress=%00".into()),
        ("address then NUL", format!("?secretAddress={a}%00")),
        ("long address", format!("?secretAddress=0x{long}")),
        ("bad percent-encoding", "?secretAddress=%zz%".into()),
        ("other parameter only", format!("?ownerAddress={a}")),
    ] {
        cases.push(case(
            format!("web3 HEAD {label}"),
            head.clone(),
            format!("/secrets/web3{query}"),
            400,
            Status,
        ));
        cases.push(
            case(
                format!("web3 POST {label}"),
                post.clone(),
                format!("/secrets/web3{query}"),
                400,
                Plain(""),
            )
            .body("value")
            .auth(sig_random.clone()),
        );
    }
    let web3 = format!("/secrets/web3?secretAddress={a}");
    for (label, auth) in [
        ("no Authorization", None),
        ("short signature", Some(sig_short.as_bytes().to_vec())),
        ("non-hex signature", Some(sig_not_hex.clone().into_bytes())),
        ("v = 0", Some(sig_v0.clone().into_bytes())),
        ("Bearer token", Some(b"Bearer abc".to_vec())),
        ("non-ASCII header", Some(b"0x\xff\xfe".to_vec())),
        ("empty header", Some(Vec::new())),
        (
            "signature of an unknown dataset",
            Some(sig_random.clone().into_bytes()),
        ),
    ] {
        let mut c = case(
            format!("web3 POST {label}"),
            post.clone(),
            &web3,
            401,
            Plain("Invalid authorization"),
        )
        .body("v");
        if let Some(auth) = auth {
            c = c.auth(auth);
        }
        cases.push(c);
    }
    cases.push(
        case("web3 POST huge body", post.clone(), &web3, 413, Status)
            .body(huge.clone())
            .auth(sig_random.clone()),
    );

    // ---- /secrets/web2 (plain errors) ----------------------------------------------------
    for (label, path) in [
        ("no query", "/secrets/web2".to_owned()),
        ("no name", format!("/secrets/web2?ownerAddress={a}")),
        ("no owner", "/secrets/web2?secretName=n".to_owned()),
        ("empty name", web2(&a.to_string(), "")),
        ("control character in name", web2(&a.to_string(), "a%01b")),
        ("NUL in name", web2(&a.to_string(), "a%00b")),
        ("257-byte name", web2(&a.to_string(), &"n".repeat(257))),
        ("bad owner", web2("0xnope", "n")),
    ] {
        cases.push(case(
            format!("web2 HEAD {label}"),
            head.clone(),
            &path,
            400,
            Status,
        ));
    }
    for method in [post.clone(), put.clone()] {
        cases.push(
            case(
                format!("web2 {method} bad owner"),
                method.clone(),
                web2("0x12", "n"),
                400,
                Plain("ownerAddress"),
            )
            .body("v"),
        );
        cases.push(
            case(
                format!("web2 {method} no Authorization"),
                method.clone(),
                web2(&a.to_string(), "n"),
                401,
                Plain("Invalid authorization"),
            )
            .body("v"),
        );
        cases.push(
            case(
                format!("web2 {method} signed by someone else"),
                method.clone(),
                web2(&a.to_string(), "n"),
                401,
                Plain("Invalid authorization"),
            )
            .body("v")
            .auth(signed(
                &PrivateKeySigner::random(),
                &challenge::named_secret(a.as_slice(), "n", b"v"),
            )),
        );
        cases.push(
            case(
                format!("web2 {method} signed over another value"),
                method.clone(),
                web2(&a.to_string(), "n"),
                401,
                Plain("Invalid authorization"),
            )
            .body("v2")
            .auth(web2_sig("n", b"v")),
        );
        cases.push(
            case(
                format!("web2 {method} empty body"),
                method.clone(),
                web2(&a.to_string(), "n"),
                400,
                Plain("empty"),
            )
            .auth(web2_sig("n", b"")),
        );
        cases.push(
            case(
                format!("web2 {method} value not UTF-8"),
                method.clone(),
                web2(&a.to_string(), "n"),
                400,
                Plain("UTF-8"),
            )
            .body(b"\xff\xfe".to_vec())
            .auth(web2_sig("n", b"\xff\xfe")),
        );
        let big = vec![b'v'; 5000];
        cases.push(
            case(
                format!("web2 {method} value over 4 KiB"),
                method.clone(),
                web2(&a.to_string(), "n"),
                413,
                Plain("Secret size should not exceed"),
            )
            .body(big.clone())
            .auth(web2_sig("n", &big)),
        );
        let name = "n".repeat(300);
        cases.push(
            case(
                format!("web2 {method} 300-byte name"),
                method.clone(),
                web2(&a.to_string(), &name),
                400,
                Plain("secret name"),
            )
            .body("v")
            .auth(web2_sig(&name, b"v")),
        );
        cases.push(
            case(
                format!("web2 {method} huge body"),
                method.clone(),
                web2(&a.to_string(), "n"),
                413,
                Status,
            )
            .body(huge.clone())
            .auth(sig_random.clone()),
        );
    }
    cases.push(
        case(
            "web2 PUT of a secret that does not exist",
            put.clone(),
            web2(&a.to_string(), "absent"),
            404,
            Plain(""),
        )
        .body("v")
        .auth(web2_sig("absent", b"v")),
    );
    cases.push(
        case(
            "web2 POST form content type, unsigned",
            post.clone(),
            web2(&a.to_string(), "n"),
            401,
            Plain("Invalid authorization"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b&c=d"),
    );

    // ---- /apps/{app}/secrets (list errors) -----------------------------------------------
    for (label, app) in [
        ("short address", "0x123".to_owned()),
        ("NUL", "%00".to_owned()),
        ("long address", long.clone()),
        ("unicode", "%C3%A9t%C3%A9".to_owned()),
    ] {
        let path = format!("/apps/{app}/secrets");
        cases.push(case(
            format!("app HEAD {label}"),
            head.clone(),
            &path,
            400,
            Status,
        ));
        cases.push(
            case(
                format!("app POST {label}"),
                post.clone(),
                &path,
                400,
                List(""),
            )
            .body("v")
            .auth(sig_random.clone()),
        );
    }
    let app_path = format!("/apps/{a}/secrets");
    cases.push(
        case(
            "app POST no Authorization",
            post.clone(),
            &app_path,
            401,
            List("Invalid authorization"),
        )
        .body("v"),
    );
    cases.push(
        case(
            "app POST short signature",
            post.clone(),
            &app_path,
            401,
            List("Invalid authorization"),
        )
        .body("v")
        .auth(sig_short),
    );
    cases.push(
        case(
            "app POST v = 0",
            post.clone(),
            &app_path,
            401,
            List("Invalid authorization"),
        )
        .body("v")
        .auth(sig_v0.clone()),
    );
    cases.push(
        case(
            "app POST signature of an unknown app",
            post.clone(),
            &app_path,
            401,
            List("Invalid authorization"),
        )
        .body("v")
        .auth(sig_random.clone()),
    );
    cases.push(
        case("app POST huge body", post.clone(), &app_path, 413, Status)
            .body(huge.clone())
            .auth(sig_random.clone()),
    );

    // ---- /requesters/{requester}/secrets/{name} (list errors) ----------------------------
    for (label, path) in [
        ("bad address", "/requesters/0x12/secrets/n".to_owned()),
        ("NUL address", "/requesters/%00/secrets/n".to_owned()),
        ("name with $", req_path("bad$name")),
        ("65-character name", req_path(&"n".repeat(65))),
        ("NUL in name", req_path("a%00b")),
        ("space in name", req_path("a%20b")),
    ] {
        cases.push(case(
            format!("requester HEAD {label}"),
            head.clone(),
            &path,
            400,
            Status,
        ));
    }
    cases.push(
        case(
            "requester POST bad address",
            post.clone(),
            "/requesters/0x12/secrets/n",
            400,
            List(""),
        )
        .body("v"),
    );
    cases.push(
        case(
            "requester POST no Authorization",
            post.clone(),
            req_path("n"),
            401,
            List("Invalid authorization"),
        )
        .body("v"),
    );
    cases.push(
        case(
            "requester POST non-hex signature",
            post.clone(),
            req_path("n"),
            401,
            List("Invalid authorization"),
        )
        .body("v")
        .auth(sig_not_hex.clone()),
    );
    cases.push(
        case(
            "requester POST signed by someone else",
            post.clone(),
            req_path("n"),
            401,
            List("Invalid authorization"),
        )
        .body("v")
        .auth(signed(
            &PrivateKeySigner::random(),
            &challenge::named_secret(a.as_slice(), "n", b"v"),
        )),
    );
    cases.push(
        case(
            "requester POST signed, bad name",
            post.clone(),
            req_path("bad.name"),
            400,
            List("Secret key should contain"),
        )
        .body("v")
        .auth(web2_sig("bad.name", b"v")),
    );
    let big = vec![b'v'; 5000];
    cases.push(
        case(
            "requester POST signed, value over 4 KiB",
            post.clone(),
            req_path("n"),
            400,
            List("Secret size should not exceed"),
        )
        .body(big.clone())
        .auth(web2_sig("n", &big)),
    );
    cases.push(
        case(
            "requester POST signed, empty value",
            post.clone(),
            req_path("n"),
            400,
            List("empty"),
        )
        .auth(web2_sig("n", b"")),
    );
    cases.push(
        case(
            "requester POST signed, value not UTF-8",
            post.clone(),
            req_path("n"),
            400,
            List("UTF-8"),
        )
        .body(b"\xc3\x28".to_vec())
        .auth(web2_sig("n", b"\xc3\x28")),
    );
    cases.push(
        case(
            // Over max(2 × limit, 64 KiB): refused before being read, 413 on every route
            // (docs/limits.md).
            "requester POST huge body",
            post.clone(),
            req_path("n"),
            413,
            Status,
        )
        .body(huge.clone())
        .auth(sig_random.clone()),
    );
    cases.push(
        case(
            "requester POST empty name segment",
            post.clone(),
            format!("/requesters/{a}/secrets/"),
            404,
            Plain("No such route"),
        )
        .body("v"),
    );

    // ---- /v2/secrets/* (coded errors) ----------------------------------------------------
    let put_ok = |edit: &dyn Fn(&mut Value)| {
        let mut body = v2_request(alice, domain, Operation::Put, "k", Some("v"), |_| {});
        edit(&mut body);
        body.to_string()
    };
    for route in ["put", "delete", "list", "show"] {
        let path = format!("/v2/secrets/{route}");
        for (label, body) in [
            ("empty body", String::new()),
            ("not JSON", "not json".to_owned()),
            ("JSON array", "[1,2]".to_owned()),
            ("JSON null", "null".to_owned()),
            ("truncated JSON", r#"{"domain":{"chainId":"#.to_owned()),
            (
                "missing message",
                json!({"domain": {}, "signer": a, "signature": "0x"}).to_string(),
            ),
        ] {
            cases.push(
                case(
                    format!("v2 {route} {label}"),
                    post.clone(),
                    &path,
                    400,
                    Coded("MALFORMED_REQUEST"),
                )
                .json()
                .body(body),
            );
        }
        cases.push(
            case(
                format!("v2 {route} huge body"),
                post.clone(),
                &path,
                413,
                Status,
            )
            .json()
            .body(huge.clone()),
        );
    }
    let v2_put = "/v2/secrets/put";
    cases.push(
        case(
            "v2 put unknown field",
            post.clone(),
            v2_put,
            400,
            Coded("MALFORMED_REQUEST"),
        )
        .json()
        .body(put_ok(&|b| b["extra"] = json!(1))),
    );
    cases.push(
        case(
            "v2 put NUL in JSON text",
            post.clone(),
            v2_put,
            400,
            Coded("MALFORMED_REQUEST"),
        )
        .json()
        .body(b"{\"domain\":\x00}".to_vec()),
    );
    cases.push(
        case(
            "v2 put bad signer address",
            post.clone(),
            v2_put,
            400,
            Coded("MALFORMED_REQUEST"),
        )
        .json()
        .body(put_ok(&|b| b["signer"] = json!("0x12"))),
    );
    cases.push(
        case(
            "v2 put wrong chain",
            post.clone(),
            v2_put,
            401,
            Coded("WRONG_CHAIN"),
        )
        .json()
        .body(put_ok(&|b| b["domain"]["chainId"] = json!(1))),
    );
    cases.push(
        case(
            "v2 put another SMS",
            post.clone(),
            v2_put,
            401,
            Coded("WRONG_DOMAIN"),
        )
        .json()
        .body(put_ok(&|b| {
            b["domain"]["verifyingContract"] = json!(Address::repeat_byte(9))
        })),
    );
    cases.push(
        case(
            "v2 put tampered name",
            post.clone(),
            v2_put,
            401,
            Coded("BAD_SIGNATURE"),
        )
        .json()
        .body(put_ok(&|b| b["message"]["name"] = json!("other"))),
    );
    cases.push(
        case(
            "v2 put signature not hex",
            post.clone(),
            v2_put,
            401,
            Coded("BAD_SIGNATURE"),
        )
        .json()
        .body(put_ok(&|b| b["signature"] = json!("0xzz"))),
    );
    cases.push(
        case(
            "v2 put expired",
            post.clone(),
            v2_put,
            401,
            Coded("SIGNATURE_EXPIRED"),
        )
        .json()
        .body(
            v2_request(alice, domain, Operation::Put, "k", Some("v"), |m| {
                m.expiry = 1
            })
            .to_string(),
        ),
    );
    cases.push(
        case(
            "v2 put expiry far ahead",
            post.clone(),
            v2_put,
            401,
            Coded("SIGNATURE_EXPIRED"),
        )
        .json()
        .body(
            v2_request(alice, domain, Operation::Put, "k", Some("v"), |m| {
                m.expiry = u64::MAX
            })
            .to_string(),
        ),
    );
    cases.push(
        case(
            "v2 put signed as a delete",
            post.clone(),
            v2_put,
            400,
            Coded("INVALID_FIELD"),
        )
        .json()
        .body(v2_request(alice, domain, Operation::Delete, "k", None, |_| {}).to_string()),
    );
    cases.push(
        case(
            "v2 put without a value",
            post.clone(),
            v2_put,
            400,
            Coded("INVALID_FIELD"),
        )
        .json()
        .body(v2_request(alice, domain, Operation::Put, "k", None, |_| {}).to_string()),
    );
    cases.push(
        case(
            "v2 put bad requester name",
            post.clone(),
            v2_put,
            400,
            Coded("INVALID_FIELD"),
        )
        .json()
        .body(
            v2_request(
                alice,
                domain,
                Operation::Put,
                "bad name!",
                Some("v"),
                |_| {},
            )
            .to_string(),
        ),
    );
    cases.push(
        case(
            "v2 put NUL in name",
            post.clone(),
            v2_put,
            400,
            Coded("INVALID_FIELD"),
        )
        .json()
        .body(v2_request(alice, domain, Operation::Put, "a\0b", Some("v"), |_| {}).to_string()),
    );
    let big = "v".repeat(5000);
    cases.push(
        case(
            "v2 put value over 4 KiB",
            post.clone(),
            v2_put,
            413,
            Coded("VALUE_TOO_LARGE"),
        )
        .json()
        .body(v2_request(alice, domain, Operation::Put, "k", Some(&big), |_| {}).to_string()),
    );
    cases.push(
        case(
            "v2 list with a value",
            post.clone(),
            "/v2/secrets/list",
            400,
            Coded("INVALID_FIELD"),
        )
        .json()
        .body(v2_request(alice, domain, Operation::List, "", Some("v"), |_| {}).to_string()),
    );
    cases.push(
        case(
            "v2 put form content type",
            post.clone(),
            v2_put,
            400,
            Coded("MALFORMED_REQUEST"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("domain=x&message=y"),
    );

    // ---- /tee/challenges/{task}, /tee/sessions, /tee/properties (exact TEE codes) ---------
    for (label, task) in [
        ("short id", "0x12".to_owned()),
        ("no 0x", TASK[2..].to_owned()),
        ("long id", format!("0x{long}")),
        ("not hex", format!("0x{}", "zz".repeat(32))),
    ] {
        cases.push(
            case(
                format!("challenge {label}"),
                post.clone(),
                format!("/tee/challenges/{task}"),
                400,
                Tee("INVALID_TASK_ID"),
            )
            .auth(sig_random.clone()),
        );
    }
    let session = "/tee/sessions";
    let session_body = |extra: &str| {
        format!(
            r#"{{"chainTaskId":"{TASK}","workerWallet":"{a}","enclaveChallenge":"{a}","signature":{{"value":"{sig_random}"}}{extra}}}"#
        )
    };
    for (label, body) in [
        ("empty body", String::new()),
        ("blank body", "   \n".to_owned()),
        ("not JSON", "hello".to_owned()),
        ("JSON array", "[]".to_owned()),
        ("bad chainTaskId", session_body("").replace(TASK, "0x12")),
        (
            "bad workerWallet",
            session_body("").replace(
                &format!("\"workerWallet\":\"{a}\""),
                "\"workerWallet\":\"0xnope\"",
            ),
        ),
        (
            "taskIndex not a number",
            session_body(r#","taskIndex":"three""#),
        ),
        (
            "signature not hex",
            session_body("").replace(&sig_random, "0xzz"),
        ),
        ("NUL in JSON text", "{\"chainTaskId\":\"\u{0}\"}".to_owned()),
    ] {
        cases.push(
            case(
                format!("session {label}"),
                post.clone(),
                session,
                400,
                Tee("NO_SESSION_REQUEST"),
            )
            .json()
            .auth(sig_random.clone())
            .body(body),
        );
    }
    cases.push(
        case(
            "challenge NUL",
            post.clone(),
            "/tee/challenges/%00",
            400,
            Tee("NUL_IN_REQUEST"),
        )
        .auth(sig_random.clone()),
    );
    // Upstream's code for a missing task id (docs/tee-sessions.md).
    cases.push(
        case(
            "session missing chainTaskId",
            post.clone(),
            session,
            401,
            Tee("EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED"),
        )
        .json()
        .auth(sig_random.clone())
        .body(json!({"workerWallet": a}).to_string()),
    );
    cases.push(
        case("session huge body", post.clone(), session, 413, Status)
            .json()
            .auth(sig_random.clone())
            .body(huge.clone()),
    );
    for (label, framework, version, status, code) in [
        (
            "unknown framework",
            "NOPE",
            "",
            400,
            "UNKNOWN_TEE_FRAMEWORK",
        ),
        ("NUL framework", "%00", "", 400, "NUL_IN_REQUEST"),
        ("NUL version", "SCONE", "/v%00", 400, "NUL_IN_REQUEST"),
        (
            "lowercase framework",
            "sgx",
            "/v5",
            400,
            "UNKNOWN_TEE_FRAMEWORK",
        ),
        (
            "long framework",
            &"S".repeat(300),
            "",
            400,
            "UNKNOWN_TEE_FRAMEWORK",
        ),
        (
            "framework not served",
            "GRAMINE",
            "",
            409,
            "TEE_FRAMEWORK_MISMATCH",
        ),
    ] {
        cases.push(case(
            format!("properties {label}"),
            get.clone(),
            format!("/tee/properties/{framework}{version}"),
            status,
            Tee(code),
        ));
    }

    // ---- /tee/provisioning (provisioning codes) -------------------------------------------
    let release = "/tee/provisioning/unknown-session/app/release";
    let pk = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
    let nonce = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";
    let simulated =
        json!({"kind": "simulated", "measurement": "ab", "report_data": "00".repeat(64)});
    for (label, body) in [
        ("empty body", String::new()),
        ("not JSON", "{nope".to_owned()),
        ("missing evidence", json!({"nonce": nonce, "publicKey": pk}).to_string()),
        ("nonce not base64", json!({"nonce": "***", "publicKey": pk, "evidence": simulated}).to_string()),
        ("short nonce", json!({"nonce": "AAAA", "publicKey": pk, "evidence": simulated}).to_string()),
        ("short public key", json!({"nonce": nonce, "publicKey": "AAAA", "evidence": simulated}).to_string()),
        ("unknown evidence kind", json!({"nonce": nonce, "publicKey": pk, "evidence": {"kind": "sev"}}).to_string()),
        ("quote not base64", json!({"nonce": nonce, "publicKey": pk, "evidence": {"kind": "sgx_dcap", "quote": "%%"}}).to_string()),
        ("unknown field", json!({"nonce": nonce, "publicKey": pk, "evidence": simulated, "x": 1}).to_string()),
    ] {
        cases.push(case(format!("release {label}"), post.clone(), release, 400, Provision("REQUEST_MALFORMED")).json().body(body));
    }
    cases.push(
        case(
            "release well formed, unknown nonce",
            post.clone(),
            release,
            401,
            Provision("NONCE_UNKNOWN"),
        )
        .json()
        .body(json!({"nonce": nonce, "publicKey": pk, "evidence": simulated}).to_string()),
    );
    cases.push(
        case("release huge body", post.clone(), release, 413, Status)
            .json()
            .body(huge.clone()),
    );
    cases.push(case(
        "nonce unknown session",
        post.clone(),
        "/tee/provisioning/unknown-session/app/nonce",
        404,
        Provision("SESSION_UNKNOWN"),
    ));
    cases.push(case(
        "nonce long session id",
        post.clone(),
        format!("/tee/provisioning/{long}/app/nonce"),
        404,
        Provision("SESSION_UNKNOWN"),
    ));
    cases.push(case(
        "nonce NUL session id",
        post.clone(),
        "/tee/provisioning/a%00b/app/nonce",
        400,
        Provision("NUL_IN_REQUEST"),
    ));

    // ---- /dev/* (plain errors) -------------------------------------------------------------
    for (route, label, body) in [
        ("apps", "empty body", String::new()),
        ("apps", "not JSON", "{".to_owned()),
        (
            "apps",
            "bad owner",
            json!({"owner": "0x12", "name": "a", "multiaddr": "x"}).to_string(),
        ),
        (
            "apps",
            "mrenclave not JSON",
            json!({"owner": a, "name": "a", "multiaddr": "x", "mrenclave": "{nope"}).to_string(),
        ),
        (
            "datasets",
            "missing owner",
            json!({"multiaddr": "/ipfs/Qm"}).to_string(),
        ),
        (
            "datasets",
            "bad checksum",
            json!({"owner": a, "multiaddr": "/ipfs/Qm", "checksum": "0x12"}).to_string(),
        ),
        (
            "workerpools",
            "unknown field",
            json!({"owner": a, "x": 1}).to_string(),
        ),
        (
            "transfer",
            "bad entry",
            json!({"entry": "nope", "to": a}).to_string(),
        ),
        ("deals", "not JSON", "[".to_owned()),
        ("deals", "empty object", "{}".to_owned()),
    ] {
        cases.push(
            case(
                format!("dev {route} {label}"),
                post.clone(),
                format!("/dev/{route}"),
                400,
                Plain(""),
            )
            .json()
            .body(body),
        );
    }
    cases.push(
        case(
            "dev transfer unknown entry",
            post.clone(),
            "/dev/transfer",
            400,
            Plain("is not an app, dataset or workerpool"),
        )
        .json()
        .body(json!({"entry": Address::repeat_byte(7), "to": a}).to_string()),
    );
    cases.push(case(
        "dev task bad id",
        get.clone(),
        "/dev/tasks/0x12",
        400,
        Plain(""),
    ));
    cases.push(case(
        "dev task unknown",
        get.clone(),
        format!("/dev/tasks/{TASK}"),
        404,
        Plain(""),
    ));
    cases.push(
        case(
            "dev task status bad id",
            post.clone(),
            "/dev/tasks/0x12/status",
            400,
            Plain(""),
        )
        .json()
        .body(r#"{"status":"COMPLETED"}"#),
    );
    cases.push(
        case(
            "dev task status bad body",
            post.clone(),
            format!("/dev/tasks/{TASK}/status"),
            400,
            Plain(""),
        )
        .json()
        .body(r#"{"status":7}"#),
    );
    // A CID whose first character is two bytes of UTF-8 (schemathesis found it panicking).
    for (name, cid) in [
        ("dev ipfs non-ascii cid", "%C2%9D"),
        ("dev ipfs not a cid", "QmNotACid"),
        ("dev ipfs path traversal", "..%2Fsms.db"),
    ] {
        cases.push(case(
            name,
            get.clone(),
            format!("/dev/ipfs/{cid}"),
            404,
            Plain("no dev IPFS document"),
        ));
    }

    // ---- methods, unknown routes ------------------------------------------------------------
    for (method, path) in [
        (Method::DELETE, "/secrets/web2".to_owned()),
        (get.clone(), "/secrets/web3".to_owned()),
        (Method::PATCH, "/v2/secrets/put".to_owned()),
        (get.clone(), "/tee/sessions".to_owned()),
        (put.clone(), app_path.clone()),
        (post.clone(), "/health".to_owned()),
        (Method::DELETE, "/metrics".to_owned()),
        (Method::from_bytes(b"BREW").unwrap(), "/version".to_owned()),
    ] {
        cases.push(case(format!("{method} {path}"), method, path, 405, Status));
    }
    // An empty segment still matches its route: the method decides.
    cases.push(case(
        "GET /apps//secrets",
        get.clone(),
        "/apps//secrets",
        405,
        Status,
    ));
    cases.push(case(
        "NUL in an unknown path",
        get.clone(),
        "/%00",
        400,
        Plain("Malformed request"),
    ));
    for path in [
        "/nope",
        "/secrets",
        "/v2/secrets",
        "/tee",
        "/tee/challenges/",
        &format!("/{long}"),
    ] {
        cases.push(case(
            format!("unknown route {}", &path[..path.len().min(20)]),
            get.clone(),
            path,
            404,
            Plain("No such route"),
        ));
    }
    cases
}

/// Requests no HTTP client library would send, written to the socket as they are.
const RAW: &[(&str, &[u8], u16)] = &[
    ("NUL in the request target", b"GET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("not HTTP", b"HELLO\r\n\r\n", 400),
    ("bad Content-Length", b"POST /v2/secrets/put HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("two Content-Lengths", b"POST /v2/secrets/put HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ("header without a colon", b"GET /health HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n", 400),
];

async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

#[tokio::test]
async fn every_malformed_request_gets_its_documented_4xx() {
    let server = TestServer::dev().await;
    let domain = server.client().v2_domain().await.unwrap();
    let alice = PrivateKeySigner::random();
    let cases = corpus(&alice, &domain);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let (status, body) = send(&http, &server.url(), case).await;
        if let Err(e) = check(case, status, &body) {
            failures.push(e);
        }
    }
    let addr = server.server().local_addr;
    for (name, request, expected) in RAW {
        let status = raw(addr, request).await;
        if status != *expected {
            failures.push(format!("raw {name}: expected {expected}, got {status}"));
        }
    }
    println!("{} cases, {} raw", cases.len(), RAW.len());
    assert!(
        cases.len() + RAW.len() >= 100,
        "the corpus has {} cases",
        cases.len() + RAW.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + RAW.len(),
        failures.join("\n")
    );
    // The server is still answering after the corpus.
    assert_eq!(server.call(Method::GET, "/health", None, None).await.0, 200);
}
