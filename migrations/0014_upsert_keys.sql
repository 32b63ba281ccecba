-- Filter preferences and global defaults are upserted one row per key
-- (`/rest/v1` with `Prefer: resolution=merge-duplicates` and
-- `on_conflict=...`), which needs a unique constraint on each key.
--
-- user_filter_preferences: UNIQUE (user_id, dashboard_id, filter_key) has
-- held since 0002 (all three columns NOT NULL), so no duplicates can
-- exist; it keeps its name and only gains a comment here.
COMMENT ON CONSTRAINT user_filter_preferences_user_id_dashboard_id_filter_key_key
  ON app.user_filter_preferences
  IS 'One preference per user, dashboard and key: the on_conflict target of upserts.';

-- global_filter_defaults had no such constraint, so a database may hold
-- several rows for one key. They are deduplicated first, deterministically,
-- so that adding the constraint cannot fail on existing data: the newest
-- row of each key is kept (latest created_at, then the greatest id), the
-- others deleted. The NULL dashboard (a default for every dashboard) is
-- one key like any other: NULLs are one partition here, and the
-- constraint is NULLS NOT DISTINCT (PostgreSQL 15).
DELETE FROM app.global_filter_defaults g
USING (
  SELECT id,
         row_number() OVER (PARTITION BY dashboard_id, filter_key
                            ORDER BY created_at DESC, id DESC) AS n
  FROM app.global_filter_defaults
) ranked
WHERE g.id = ranked.id AND ranked.n > 1;

ALTER TABLE app.global_filter_defaults
  ADD CONSTRAINT global_filter_defaults_one_per_key
  UNIQUE NULLS NOT DISTINCT (dashboard_id, filter_key);
