-- As on PostgreSQL (postgres/0007): every query that names an owner names its namespace too,
-- so the primary key `(namespace, owner, name)` serves them by its prefix, and
-- `records_owner (owner, namespace)` only cost every insert and delete one more B-tree to
-- write (`key_lookups_search_the_primary_key` checks that lookups and lists use the key).
DROP INDEX IF EXISTS records_owner;
