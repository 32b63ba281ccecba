-- Data versions every instance reads the same from PostgreSQL.
--
-- Until now a table's version was the last change an instance heard, and
-- before its first, a marker of the instance's own listening session: a
-- second instance, or the same one after a reconnect, missed every entry
-- stored before. Now each tracked table has a sequence of its own, drawn
-- by every write to it, and a table's version is `<sequence oid>.<last
-- value>`: any instance can read it, and an instance started later reads
-- the same version for unchanged data, so it reaches the entries others
-- stored (`src/cache/versions.rs` has the argument for exactness).
--
-- The write path costs what it did: a shared advisory lock, a sequence
-- number (of the table's sequence instead of the global one), and a test
-- for watchers; NOTIFY only while some instance watches (migration 0006).
-- The lock is now taken *before* the number is drawn: a reader that read
-- a version and then waits out the writers in flight (the barrier) has
-- then waited for every write that drew a number up to it.

CREATE TABLE IF NOT EXISTS app.data_versions (
  relid oid PRIMARY KEY,
  sequence regclass NOT NULL
);
REVOKE ALL ON app.data_versions FROM PUBLIC;

-- Written as variable initialisers, evaluated in order and without an
-- executor; every name schema-qualified (no `SET search_path`, which
-- costs every write a configuration save and restore). TG_ARGV[0] is the
-- oid of the table's sequence.
CREATE OR REPLACE FUNCTION app.announce_data_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  writing boolean := pg_catalog.pg_advisory_xact_lock_shared(1464139777, TG_RELID::integer) IS NULL;
  n bigint := pg_catalog.nextval(TG_ARGV[0]::pg_catalog.oid::pg_catalog.regclass);
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
REVOKE ALL ON FUNCTION app.announce_data_change() FROM PUBLIC;

-- Tracks one table: its sequence, its row in app.data_versions and its
-- trigger (replacing a trigger of an earlier migration).
CREATE OR REPLACE FUNCTION app.track_table(rel oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  seq regclass;
BEGIN
  EXECUTE pg_catalog.format('CREATE SEQUENCE IF NOT EXISTS app.%I', 'data_version_' || rel);
  seq := pg_catalog.to_regclass(pg_catalog.format('app.%I', 'data_version_' || rel));
  INSERT INTO app.data_versions (relid, sequence) VALUES (rel, seq)
    ON CONFLICT (relid) DO UPDATE SET sequence = excluded.sequence;
  EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS widget_data_changed ON %s', rel::regclass);
  EXECUTE pg_catalog.format(
    'CREATE TRIGGER widget_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
       FOR EACH STATEMENT EXECUTE FUNCTION app.announce_data_change(%L)',
    rel::regclass, seq::oid);
END
$$;

-- Installs tracking on every table of `schemas` that lacks it (or has an
-- earlier migration's trigger); returns how many it installed. Tables the
-- caller does not own are skipped (and then never cached). Forgets the
-- sequences of tables that no longer exist.
CREATE OR REPLACE FUNCTION app.install_change_triggers(schemas text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  t record;
  gone record;
  installed integer := 0;
BEGIN
  FOR gone IN
    SELECT d.relid, d.sequence FROM app.data_versions d
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.relid)
  LOOP
    DELETE FROM app.data_versions WHERE relid = gone.relid;
    EXECUTE pg_catalog.format('DROP SEQUENCE IF EXISTS %s', gone.sequence);
  END LOOP;
  FOR t IN
    SELECT c.oid
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(schemas)
      AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                      WHERE g.tgrelid = c.oid AND g.tgname = 'widget_data_changed'
                        AND g.tgfoid = 'app.announce_data_change'::regproc)
  LOOP
    PERFORM app.track_table(t.oid);
    installed := installed + 1;
  END LOOP;
  RETURN installed;
END
$$;

-- The tables tracked by an earlier migration's trigger move to their own
-- sequence now.
SELECT app.track_table(g.tgrelid)
FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
WHERE g.tgname = 'widget_data_changed'
  AND g.tgfoid = 'app.notify_data_change'::regproc
  AND pg_catalog.pg_has_role(c.relowner, 'USAGE');
