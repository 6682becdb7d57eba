-- The live rows per namespace (the `sms_secrets_stored` gauge's count, sql::COUNT): without it
-- the count reads every row of the table, ciphertexts included (seconds at 1,000,000 rows,
-- competing with requests); with it, the count reads this much smaller covering index.
CREATE INDEX IF NOT EXISTS records_live ON records (namespace, deleted_at) WHERE deleted_at IS NULL;
