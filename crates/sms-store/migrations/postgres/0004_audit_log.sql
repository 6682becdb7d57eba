-- The audit log (docs/audit.md): append-only, hash-chained entries; the chain head (size and
-- hash of the last entry) is one row that every append locks (SELECT ... FOR UPDATE), so the
-- appends of every replica are serialised into one chain; signed tree heads over prefixes.
CREATE TABLE IF NOT EXISTS audit_entries (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    prev        BYTEA  NOT NULL,
    hash        BYTEA  NOT NULL,
    body        TEXT   NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_chain (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    size        BIGINT NOT NULL,
    head        BYTEA  NOT NULL
);

INSERT INTO audit_chain (id, size, head) VALUES (1, 0, decode(repeat('00', 32), 'hex')) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_heads (
    size        BIGINT PRIMARY KEY,
    root        BYTEA  NOT NULL,
    at          BIGINT NOT NULL,
    signature   TEXT   NOT NULL
);
