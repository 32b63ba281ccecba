-- Change tracking for the result cache: every committed write to a tracked
-- table announces `schema.table:<n>` on the `widget_data_changes` channel,
-- where n comes from one sequence. The service keys cached results by the
-- last n it heard for each table read, so a write makes the next request a
-- miss with no TTL wait and no polling.
--
-- Statement-level triggers, a sequence (non-transactional, never blocks)
-- and NOTIFY (sent only at commit, not at all on rollback): concurrent
-- writers never wait on a shared row.

CREATE SEQUENCE IF NOT EXISTS app.data_version;

CREATE OR REPLACE FUNCTION app.notify_data_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  PERFORM pg_notify(
    'widget_data_changes',
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ':' || nextval('app.data_version'));
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app.notify_data_change() FROM PUBLIC;

-- Installs the trigger on every table of `schemas` that lacks it; returns
-- how many it installed. Tables the caller does not own are skipped (and
-- then never cached).
CREATE OR REPLACE FUNCTION app.install_change_triggers(schemas text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  t record;
  installed integer := 0;
BEGIN
  FOR t IN
    SELECT c.oid, n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(schemas)
      AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND pg_has_role(c.relowner, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_trigger g
                      WHERE g.tgrelid = c.oid AND g.tgname = 'widget_data_changed')
  LOOP
    EXECUTE format(
      'CREATE TRIGGER widget_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I.%I
         FOR EACH STATEMENT EXECUTE FUNCTION app.notify_data_change()',
      t.nspname, t.relname);
    installed := installed + 1;
  END LOOP;
  RETURN installed;
END
$$;

-- New tables get their trigger when the service reloads its schema cache;
-- where we may create event triggers (superuser), DDL asks for that reload.
CREATE OR REPLACE FUNCTION app.announce_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('widget_data', 'reload schema');
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'widget_data_ddl') THEN
    CREATE EVENT TRIGGER widget_data_ddl ON ddl_command_end
      WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
                   'CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'DROP TABLE',
                   'DROP VIEW', 'CREATE SCHEMA')
      EXECUTE FUNCTION app.announce_ddl();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'not allowed to create event triggers: send NOTIFY widget_data, ''reload schema'' after DDL';
END
$$;
