-- The audit log (docs/audit.md): append-only, hash-chained entries; the chain head (size and
-- hash of the last entry) is one row that every append updates, so appends are serialised;
-- signed tree heads over prefixes of the log.
CREATE TABLE IF NOT EXISTS audit_entries (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    prev        BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    body        TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_chain (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    size        INTEGER NOT NULL,
    head        BLOB    NOT NULL
);

INSERT INTO audit_chain (id, size, head) VALUES (1, 0, zeroblob(32)) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_heads (
    size        INTEGER PRIMARY KEY,
    root        BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    signature   TEXT    NOT NULL
);
