-- Every stored value is a sealed record: AES-256-GCM ciphertext under a data key, with the
-- record's identity (namespace, owner, name) as associated data.
CREATE TABLE IF NOT EXISTS data_keys (
    id          INTEGER PRIMARY KEY,
    wrapped     BLOB    NOT NULL,
    nonce       BLOB    NOT NULL,
    master_fp   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS records (
    namespace   TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    key_id      INTEGER NOT NULL REFERENCES data_keys(id),
    nonce       BLOB    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (namespace, owner, name)
);

CREATE INDEX IF NOT EXISTS records_expiry ON records (namespace, expires_at) WHERE expires_at IS NOT NULL;
