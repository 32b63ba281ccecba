-- Widget bundles (seed 002): every registered version of a third-party
-- widget's code, pinned by its SHA-256. Rows are never deleted: the
-- history stays.
--
-- Who may do what, enforced here (row-level security) and not only by the
-- service:
--   * a developer (authenticated) registers versions of bundles they own:
--     the first version of a bundle id makes them its owner, and nobody
--     else may add versions to it;
--   * service_role (BYPASSRLS) reviews: approves, rejects, quarantines;
--     the service's own connection (the table's owner) records what
--     re-verification finds;
--   * everyone, anon included, reads approved versions' public fields
--     (what serving and `<script integrity>` need); owners read all of
--     their own, whatever their status.

CREATE TABLE app.widget_bundles (
  bundle_id         text NOT NULL CHECK (bundle_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  version           text NOT NULL CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$'),
  owner_id          uuid NOT NULL DEFAULT auth.uid(),
  origin_url        text NOT NULL,
  sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  integrity         text NOT NULL CHECK (integrity LIKE 'sha384-%'),
  size_bytes        integer NOT NULL CHECK (size_bytes >= 0),
  content_type      text NOT NULL,
  status            text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'quarantined')),
  declared_hosts    text[] NOT NULL DEFAULT '{}',
  findings          jsonb NOT NULL DEFAULT '[]',
  fetched_at        timestamptz NOT NULL DEFAULT now(),
  last_verified_at  timestamptz,
  drift_count       integer NOT NULL DEFAULT 0,
  last_drift_at     timestamptz,
  drift_sha256      text,
  unreachable_count integer NOT NULL DEFAULT 0,
  reviewed_at       timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bundle_id, version)
);
CREATE INDEX widget_bundles_owner_id ON app.widget_bundles (owner_id);
CREATE INDEX widget_bundles_approved ON app.widget_bundles (bundle_id, created_at DESC)
  WHERE status = 'approved';

-- The owner of a bundle id, whoever asks (RLS would hide other owners'
-- pending rows from the check below).
CREATE FUNCTION app.widget_bundle_owner(id text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT owner_id FROM app.widget_bundles WHERE bundle_id = id LIMIT 1
$$;
REVOKE ALL ON FUNCTION app.widget_bundle_owner(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.widget_bundle_owner(text) TO authenticated, service_role;

ALTER TABLE app.widget_bundles ENABLE ROW LEVEL SECURITY;

CREATE POLICY widget_bundles_read ON app.widget_bundles FOR SELECT
  TO anon, authenticated
  USING (status = 'approved' OR owner_id = (SELECT auth.uid()));

CREATE POLICY widget_bundles_register ON app.widget_bundles FOR INSERT
  TO authenticated
  WITH CHECK (
    owner_id = (SELECT auth.uid())
    AND status = 'pending'
    AND drift_count = 0
    AND coalesce(app.widget_bundle_owner(bundle_id), owner_id) = owner_id
  );

GRANT USAGE ON SCHEMA app TO anon;
GRANT SELECT (bundle_id, version, sha256, integrity, size_bytes, content_type, status, fetched_at, created_at)
  ON app.widget_bundles TO anon;
GRANT SELECT, INSERT ON app.widget_bundles TO authenticated;
GRANT SELECT, INSERT, UPDATE ON app.widget_bundles TO service_role;

-- Serving keeps approved versions in memory: a change of status (a
-- review, a quarantine after drift) tells every instance to forget it.
-- Status changes are rare, so this always notifies.
CREATE FUNCTION app.widget_bundle_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('widget_data_bundles', NEW.bundle_id || '/' || NEW.version);
  RETURN NULL;
END
$$;
CREATE TRIGGER changed AFTER UPDATE ON app.widget_bundles
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION app.widget_bundle_changed();
