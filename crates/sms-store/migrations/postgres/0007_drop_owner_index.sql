-- Every query that names an owner names its namespace too, so the primary key
-- `(namespace, owner, name)` serves them all by its prefix, and `records_owner (owner,
-- namespace)` served nothing of its own. Worse, the planner chose it for lookups by key on a
-- table not analysed yet (a fresh database after a burst of pushes) and filtered the names row
-- by row: 11,715 rows read for one HEAD (`postgres_key_lookups_do_not_scan_a_namespace`).
DROP INDEX IF EXISTS records_owner;
