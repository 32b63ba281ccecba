-- Cached answers must not outlive the permissions they were computed
-- under. The service keys every entry with a digest of all privileges,
-- RLS switches, policies and role memberships, read at each schema
-- reload; here DDL that changes permissions asks for that reload too:
-- GRANT and REVOKE on objects, policies created, altered or dropped
-- (ALTER TABLE ... ENABLE/DISABLE ROW LEVEL SECURITY already did).
--
-- Role memberships (GRANT role TO role) fire no event trigger: after
-- changing them, send NOTIFY widget_data, 'reload schema'.

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'widget_data_ddl') THEN
    DROP EVENT TRIGGER widget_data_ddl;
  END IF;
  CREATE EVENT TRIGGER widget_data_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
                 'CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'DROP TABLE',
                 'DROP VIEW', 'CREATE SCHEMA', 'GRANT', 'REVOKE', 'CREATE POLICY',
                 'ALTER POLICY', 'DROP POLICY', 'CREATE FUNCTION', 'ALTER FUNCTION')
    EXECUTE FUNCTION app.announce_ddl();
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'not allowed to create event triggers: send NOTIFY widget_data, ''reload schema'' after DDL and permission changes';
END
$$;
