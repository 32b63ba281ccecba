-- A row that names another user's dashboard or data source must be
-- refused exactly like one that names a row that does not exist: a
-- foreign-key error for the one and an ownership error for the other told
-- users which ids other users have. The ownership checks below come first
-- (row-level security is checked before constraints), and refuse both.

ALTER POLICY owner_all ON app.user_filter_preferences
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid())
              AND EXISTS (SELECT 1 FROM app.dashboards d
                          WHERE d.id = dashboard_id AND d.owner_id = (SELECT auth.uid())));

ALTER POLICY owner_all ON app.dashboard_widgets
  USING (owner_id = (SELECT auth.uid()))
  WITH CHECK (owner_id = (SELECT auth.uid())
              AND EXISTS (SELECT 1 FROM app.dashboards d
                          WHERE d.id = dashboard_id AND d.owner_id = (SELECT auth.uid()))
              AND (data_source_id IS NULL
                   OR EXISTS (SELECT 1 FROM app.widget_data_sources s
                              WHERE s.id = data_source_id AND s.owner_id = (SELECT auth.uid()))));
