-- The live rows per namespace (the `sms_secrets_stored` gauge's count, sql::COUNT): without it
-- the count reads every row of the table, ciphertexts included; with it, an index-only scan of
-- this much smaller partial index. Built once, under the migration lock (writes wait for it).
CREATE INDEX IF NOT EXISTS records_live ON records (namespace, deleted_at) WHERE deleted_at IS NULL;
