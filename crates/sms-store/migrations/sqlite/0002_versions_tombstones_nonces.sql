-- Secrets API v2: a deleted secret keeps its row as a tombstone (no value, version bumped) so
-- versions stay monotonic when the name is created again; signed-request nonces per owner.
ALTER TABLE records ADD COLUMN deleted_at INTEGER;

CREATE TABLE IF NOT EXISTS request_nonces (
    owner       TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, nonce)
);

CREATE INDEX IF NOT EXISTS request_nonces_expiry ON request_nonces (expires_at);
CREATE INDEX IF NOT EXISTS records_owner ON records (owner, namespace);
