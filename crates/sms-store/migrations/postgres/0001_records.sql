-- Every stored value is a sealed record: AES-256-GCM ciphertext under a data key, with the
-- record's identity (namespace, owner, name) as associated data.
CREATE TABLE IF NOT EXISTS data_keys (
    id          BIGINT PRIMARY KEY,
    wrapped     BYTEA    NOT NULL,
    nonce       BYTEA    NOT NULL,
    master_fp   TEXT    NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS records (
    namespace   TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    key_id      BIGINT NOT NULL REFERENCES data_keys(id),
    nonce       BYTEA    NOT NULL,
    ciphertext  BYTEA    NOT NULL,
    version     BIGINT NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, owner, name)
);

CREATE INDEX IF NOT EXISTS records_expiry ON records (namespace, expires_at) WHERE expires_at IS NOT NULL;
