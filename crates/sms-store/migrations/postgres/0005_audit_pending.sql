-- Audit entries committed in the same transaction as the action they record (a secret
-- write, a challenge, a session, a release), waiting to be chained: appending to the chain
-- inside the action's transaction would hold the chain-head lock until each commit and
-- serialise every replica's writes. Any replica moves them into audit_entries, in id order,
-- under the chain-head lock (docs/audit.md).
CREATE TABLE IF NOT EXISTS audit_pending (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    body        TEXT   NOT NULL
);
