-- One user's rows must not slow down another's reads.
--
-- Before this, `owner_id = auth.uid()` in the ownership policies was
-- evaluated for every row of a sequential scan (auth.uid() parses the JWT
-- claims and matches a regex), and no ownership column was indexed: with
-- 436k dashboards of one user, another user's `GET /rest/v1/dashboards`
-- took 1.55 s. Now:
--
-- * every column a policy compares with auth.uid() has an index, and so
--   does every foreign key of the dashboard tables (cascades and joins);
-- * the policies read `(SELECT auth.uid())`, an init plan evaluated once
--   per statement instead of once per row (Supabase's own advice);
-- * the ownership columns tell the planner to expect a small share of the
--   rows per owner. The planner cannot know at plan time which user asks,
--   so it estimates `owner_id = <the caller>` from the column's statistics:
--   with one user owning nearly every row that estimate is "half the
--   table" and it picks a sequential scan, which is right for that user
--   and ruinous for everybody else. Planning for "one owner's rows" keeps
--   every user on the index (the heavy user's own page of 1000 rows still
--   comes from the index in a few milliseconds).

CREATE INDEX IF NOT EXISTS dashboards_owner_id ON app.dashboards (owner_id);
CREATE INDEX IF NOT EXISTS widget_data_sources_owner_id ON app.widget_data_sources (owner_id);
CREATE INDEX IF NOT EXISTS dashboard_widgets_owner_id ON app.dashboard_widgets (owner_id);
CREATE INDEX IF NOT EXISTS dashboard_widgets_data_source_id ON app.dashboard_widgets (data_source_id);
-- user_filter_preferences (user_id, ...) is the leading column of its
-- unique constraint's index already.
CREATE INDEX IF NOT EXISTS user_filter_preferences_dashboard_id ON app.user_filter_preferences (dashboard_id);
CREATE INDEX IF NOT EXISTS global_filter_defaults_dashboard_id ON app.global_filter_defaults (dashboard_id);

-- n_distinct < 0: distinct values as a fraction of the rows (here: an
-- owner has about 1% of them, whatever the table's size).
ALTER TABLE app.dashboards ALTER COLUMN owner_id SET (n_distinct = -0.01);
ALTER TABLE app.widget_data_sources ALTER COLUMN owner_id SET (n_distinct = -0.01);
ALTER TABLE app.dashboard_widgets ALTER COLUMN owner_id SET (n_distinct = -0.01);
ALTER TABLE app.user_filter_preferences ALTER COLUMN user_id SET (n_distinct = -0.01);

ALTER POLICY owner_all ON app.dashboards
  USING (owner_id = (SELECT auth.uid())) WITH CHECK (owner_id = (SELECT auth.uid()));
ALTER POLICY owner_all ON app.widget_data_sources
  USING (owner_id = (SELECT auth.uid())) WITH CHECK (owner_id = (SELECT auth.uid()));
ALTER POLICY owner_all ON app.dashboard_widgets
  USING (owner_id = (SELECT auth.uid()))
  WITH CHECK (owner_id = (SELECT auth.uid())
              AND EXISTS (SELECT 1 FROM app.dashboards d
                          WHERE d.id = dashboard_id AND d.owner_id = (SELECT auth.uid())));
ALTER POLICY owner_all ON app.user_filter_preferences
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));

ANALYZE app.dashboards, app.widget_data_sources, app.dashboard_widgets, app.user_filter_preferences;
