-- Announce a table's writes only while some service instance watches it.
--
-- 0004 announced every write. NOTIFY serialises commits (PostgreSQL takes
-- one database-wide lock from NOTIFY's queue insert until after the commit
-- record is flushed), which halved single-row insert throughput. Now:
--
-- * An instance that caches a result read from a table first *watches* it:
--   its listening session holds a shared advisory lock (class 1464139778,
--   key = the table's oid). It lets go when it hears the table's next
--   change, since every entry it made for the table is unreachable then.
-- * A writer's statement trigger takes a shared transaction lock (class
--   1464139777, same key), then tests for watchers by trying, and at once
--   releasing, an exclusive lock of the watch class. Only when a watcher
--   holds it does the write NOTIFY. Writers share both locks, so they never
--   wait on each other; an unwatched table costs a few lock-table lookups.
-- * An instance that starts watching then takes (and releases) the writer
--   class exclusively: that waits for every write still in flight that may
--   have missed the watch. After it, every write either finished before
--   (and is in the snapshot of the query that follows) or sees the watch
--   and announces itself.
--
-- Every write still draws a number from app.data_version, so an instance
-- that starts later (base marker) never mistakes an old entry for current.

-- Written as variable initialisers and IF conditions, which PL/pgSQL
-- evaluates without starting an executor, unlike PERFORM. No `SET
-- search_path` clause (it costs every write a configuration save and
-- restore): every function is schema-qualified instead, and the types are
-- SQL keywords, so a writer's search_path cannot redirect any of it.
CREATE OR REPLACE FUNCTION app.notify_data_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  n bigint := pg_catalog.nextval('app.data_version'::pg_catalog.regclass);
  writing boolean := pg_catalog.pg_advisory_xact_lock_shared(1464139777, TG_RELID::integer) IS NULL;
  unwatched boolean := pg_catalog.pg_try_advisory_lock(1464139778, TG_RELID::integer);
BEGIN
  IF unwatched THEN
    unwatched := pg_catalog.pg_advisory_unlock(1464139778, TG_RELID::integer);
  ELSE
    PERFORM pg_catalog.pg_notify('widget_data_changes',
      pg_catalog.concat(TG_TABLE_SCHEMA, '.', TG_TABLE_NAME, ':', n));
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app.notify_data_change() FROM PUBLIC;
