-- Keys and rollback detection (docs/keys-and-backups.md). Rows written from now on are
-- sealed with their identity AND version as associated data (seal_format 2); rows written
-- before keep seal_format 1 and open only under the data keys of that time (wrap_format 1),
-- until `sms operator rewrap` re-seals them. Data keys count the encryptions reserved
-- under them (by every replica), which decides when a new data key is created.
ALTER TABLE records ADD COLUMN seal_format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE data_keys ADD COLUMN encryptions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE data_keys ADD COLUMN wrap_format INTEGER NOT NULL DEFAULT 1;

CREATE INDEX IF NOT EXISTS records_key_id ON records (key_id);
