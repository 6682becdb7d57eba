//! The OpenAPI 3.1 document, built from the route table ([`super::table`]) with serde_json:
//! the table already holds every fact the document states, so a derive crate would only add a
//! second place to describe each route.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::{Body, Feature, Route};
use crate::state::AppState;

pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(&super::mounted(&state)))
}

/// The document describing `routes` (the mounted ones when served).
pub fn document(routes: &[Route]) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in routes {
        let operation = operation(route);
        paths
            .entry(route.path.to_string())
            .or_default()
            .insert(route.verb.as_str().to_string(), operation);
    }
    let tags: Vec<Value> = Feature::ALL
        .iter()
        .map(|f| json!({ "name": f.tag(), "description": tag_description(*f) }))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SMS",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Secret Management Service: the iExec-compatible secret and TEE APIs, attested provisioning, operations and the dev ledger.",
        },
        "tags": tags,
        "paths": paths,
        "components": { "schemas": schemas(), "securitySchemes": {
            "iexecSignature": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "EIP-191 signature (0x + 130 hex) over the route's challenge (docs/secrets-api.md)",
            }
        }},
    })
}

fn tag_description(feature: Feature) -> &'static str {
    match feature {
        Feature::Secrets => "iExec-compatible secret API (CORS enabled)",
        Feature::SecretsV2 => {
            "secrets API v2: EIP-712 signed, replay-proof, versioned (CORS enabled)"
        }
        Feature::Ops => "version, health, metrics, API description",
        Feature::Tee => "iExec-compatible TEE API; only when a TEE framework is served",
        Feature::Provisioning => "attested provisioning of enclave environments",
        Feature::Dev => "dev ledger; only with --dev",
        Feature::Admin => "keys and backups (bearer token); only with --admin-token-file",
        Feature::Audit => "tamper-evident audit log: entries, signed tree heads, owner receipts",
    }
}

/// Statuses of the request limits, documented on every operation that does not name them.
const LIMIT_REFUSALS: [(u16, &str); 3] = [
    (
        408,
        "the request was not received in time (--request-timeout-ms)",
    ),
    (
        429,
        "rate limited (per client address or signer); see Retry-After",
    ),
    (
        503,
        "too many requests of this route family in flight, or a dependency is unavailable",
    ),
];

fn operation(route: &Route) -> Value {
    let op = &route.operation;
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true, "schema": parameter_schema(name) })
        })
        .collect();
    parameters.extend(op.query.iter().map(|(name, description, required)| {
        json!({ "name": name, "in": "query", "required": required, "description": description,
                "schema": parameter_schema(name) })
    }));
    let mut responses = Map::new();
    for (status, description, body) in op.responses {
        let mut answer = json!({ "description": description });
        if let Some(content) = content(*body) {
            answer["content"] = content;
        }
        responses.insert(status.to_string(), answer);
    }
    // Refusals any route can give before its handler runs (docs/limits.md).
    for (status, description) in LIMIT_REFUSALS {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({ "description": description }));
    }
    let mut value = json!({
        "operationId": operation_id(route),
        "summary": op.summary,
        "tags": [route.feature.tag()],
        "responses": responses,
    });
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(content) = content(op.request) {
        value["requestBody"] = json!({ "required": true, "content": content });
    }
    if route.feature == Feature::Secrets && route.verb != super::Verb::Head {
        value["security"] = json!([{ "iexecSignature": [] }]);
    }
    value
}

/// The accepted form of a path or query parameter, by name (anything else is a 400).
fn parameter_schema(name: &str) -> Value {
    const ADDRESS: &str = "^0x[0-9a-fA-F]{40}$";
    match name {
        "app" | "requester" | "secretAddress" | "ownerAddress" => {
            json!({ "type": "string", "pattern": ADDRESS })
        }
        "task" => json!({ "type": "string", "pattern": "^0x[0-9a-fA-F]{64}$" }),
        "name" => json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }),
        "framework" => {
            json!({ "type": "string", "enum": ["scone", "gramine", "tdx", "SCONE", "GRAMINE", "TDX"] })
        }
        _ => json!({ "type": "string" }),
    }
}

fn operation_id(route: &Route) -> String {
    let mut id = route.verb.as_str().to_string();
    for part in route.path.split('/').filter(|s| !s.is_empty()) {
        let part = part.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.extend(
            part.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

fn content(body: Body) -> Option<Value> {
    match body {
        Body::None => None,
        Body::Text(description) => Some(json!({
            "text/plain": { "schema": { "type": "string", "description": description } }
        })),
        Body::Json(schema) => Some(json!({
            "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } }
        })),
    }
}

fn schemas() -> Value {
    json!({
        "Object": { "type": "object" },
        "PlainError": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "string" }, "reason": { "type": "string" } },
        },
        "ListError": {
            "type": "object", "required": ["error"],
            "properties": {
                "error": { "type": "array", "items": { "type": "string" } },
                "reason": { "type": "string" },
            },
        },
        "Version": {
            "type": "object", "required": ["version"],
            "properties": { "version": { "type": "string" }, "simulatedTee": { "type": "boolean" } },
        },
        "Health": {
            "type": "object", "required": ["status"],
            "properties": { "status": { "type": "string" } },
        },
        "Framework": { "type": "string", "enum": ["SCONE", "GRAMINE", "TDX"] },
        "WorkerpoolAuthorization": {
            "type": "object",
            "required": ["chainTaskId", "workerWallet", "enclaveChallenge", "signature"],
            "properties": {
                "chainTaskId": { "type": "string" },
                "workerWallet": { "type": "string" },
                "enclaveChallenge": { "type": "string" },
                "signature": { "type": "object" },
            },
        },
        "SessionAnswer": {
            "type": "object", "required": ["data"],
            "properties": { "data": {
                "type": "object",
                "properties": {
                    "sessionId": { "type": "string" },
                    "secretProvisioningUrl": { "type": "string" },
                },
            }},
        },
        "Explanation": {
            "type": "object", "required": ["taskId", "checks", "ok"],
            "properties": {
                "taskId": { "type": "string" },
                "worker": { "type": ["string", "null"] },
                "ok": { "type": "boolean" },
                "checks": { "type": "array", "items": {
                    "type": "object", "required": ["name", "status", "ok", "fact", "code"],
                    "properties": {
                        "name": { "type": "string" },
                        "status": { "type": "string", "enum": ["pass", "fail", "skipped"] },
                        "ok": { "type": "boolean" },
                        "fact": { "type": "string" },
                        "code": { "type": ["string", "null"] },
                    },
                }},
            },
        },
        "SessionError": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "string" } },
        },
        "Domain": {
            "type": "object", "required": ["chainId", "verifyingContract"],
            "properties": {
                "name": { "type": "string" }, "version": { "type": "string" },
                "chainId": { "type": "integer" }, "verifyingContract": { "type": "string" },
            },
        },
        "SignedRequest": {
            "type": "object", "required": ["domain", "message", "signer", "signature"],
            "properties": {
                "domain": { "$ref": "#/components/schemas/Domain" },
                "message": {
                    "type": "object", "required": ["operation", "kind", "owner", "nonce", "expiry"],
                    "properties": {
                        "operation": { "type": "string", "enum": ["put", "delete", "list", "show"] },
                        "kind": { "type": "string", "enum": ["web2", "web3", "app-developer", "requester"] },
                        "owner": { "type": "string" }, "name": { "type": "string" },
                        "valueHash": { "type": "string" }, "expectedVersion": { "type": "integer" },
                        "nonce": { "type": "string" }, "expiry": { "type": "integer" },
                    },
                },
                "signer": { "type": "string" }, "signature": { "type": "string" },
                "value": { "type": "string" },
            },
        },
        "SecretVersion": {
            "type": "object", "required": ["kind", "owner", "name", "version"],
            "properties": {
                "kind": { "type": "string" }, "owner": { "type": "string" },
                "name": { "type": "string" }, "version": { "type": "integer" },
            },
        },
        "SecretMetadata": {
            "type": "object",
            "required": ["kind", "owner", "name", "version", "createdAt", "updatedAt", "keyId"],
            "properties": {
                "kind": { "type": "string" }, "owner": { "type": "string" },
                "name": { "type": "string" }, "version": { "type": "integer" },
                "createdAt": { "type": "integer" }, "updatedAt": { "type": "integer" },
                "keyId": { "type": "integer" },
            },
        },
        "SecretList": {
            "type": "object", "required": ["kind", "owner", "secrets"],
            "properties": {
                "kind": { "type": "string" }, "owner": { "type": "string" },
                "secrets": { "type": "array", "items": { "$ref": "#/components/schemas/SecretMetadata" } },
            },
        },
        "CodedError": {
            "type": "object", "required": ["error"],
            "properties": { "error": {
                "type": "object", "required": ["code", "message", "field"],
                "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" },
                    "field": { "type": ["string", "null"] },
                    "currentVersion": { "type": "integer" },
                },
            }},
        },
        "DevInfo": {
            "type": "object", "required": ["dev"],
            "properties": { "dev": { "type": "boolean", "const": true }, "ledger": { "type": "string" } },
        },
    })
}
