//! The features of the API (a route's part, its OpenAPI tag and its limit family). A leaf
//! module: the limits name families after it without depending on the route table.

/// Which part of the API a route belongs to; decides when it is mounted and which layers wrap it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// iExec-compatible secret API (`/secrets/*`, `/apps/*`, `/requesters/*`); CORS applies.
    Secrets,
    /// Secrets API v2 (`/v2/*`): EIP-712 signed, versioned; CORS applies.
    SecretsV2,
    /// Version, health, metrics, this API description.
    Ops,
    /// iExec-compatible TEE API; mounted only when a TEE framework is served.
    Tee,
    /// Attested provisioning (ours).
    Provisioning,
    /// Dev ledger; mounted only with `--dev`.
    Dev,
    /// Key status, rotation, backup; mounted only with `--admin-token-file`.
    Admin,
    /// The audit log: entries, signed heads, owner receipts.
    Audit,
}

impl Feature {
    pub const ALL: [Feature; 8] = [
        Feature::Secrets,
        Feature::SecretsV2,
        Feature::Ops,
        Feature::Tee,
        Feature::Provisioning,
        Feature::Dev,
        Feature::Admin,
        Feature::Audit,
    ];

    pub fn tag(self) -> &'static str {
        match self {
            Feature::Secrets => "secrets",
            Feature::SecretsV2 => "secrets-v2",
            Feature::Ops => "ops",
            Feature::Tee => "tee",
            Feature::Provisioning => "provisioning",
            Feature::Dev => "dev",
            Feature::Admin => "admin",
            Feature::Audit => "audit",
        }
    }
}
