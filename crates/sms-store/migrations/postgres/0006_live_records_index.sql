-- The live rows per namespace (the `sms_secrets_stored` gauge's count, sql::COUNT): without it
-- the count reads every row of the table, ciphertexts included; with it, an index-only scan of
-- this much smaller partial index. Built once, under the migration lock (writes wait for it).
-- It holds the whole key, not only the namespace: the planner may prefer this smaller index to
-- the primary key for a lookup by key (it did on a table not analysed yet), and that lookup
-- must then still be on all three columns, not a scan of the namespace.
CREATE INDEX IF NOT EXISTS records_live ON records (namespace, owner, name) WHERE deleted_at IS NULL;
