-- Dashboards, widgets, filter preferences and the result cache, in the
-- internal schema `app` (never exposed to ad-hoc widget queries).

CREATE SCHEMA IF NOT EXISTS app;
GRANT USAGE ON SCHEMA app TO authenticated, service_role;

CREATE OR REPLACE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TABLE app.dashboards (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id    uuid NOT NULL DEFAULT auth.uid(),
  name        text NOT NULL,
  description text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.widget_data_sources (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id    uuid NOT NULL DEFAULT auth.uid(),
  name        text NOT NULL,
  data_source jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.dashboard_widgets (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dashboard_id     uuid NOT NULL REFERENCES app.dashboards (id) ON DELETE CASCADE,
  owner_id         uuid NOT NULL DEFAULT auth.uid(),
  title            text NOT NULL DEFAULT '',
  widget_type      text NOT NULL
                   CHECK (widget_type IN ('metric', 'chart', 'stat', 'gauge', 'table', 'summary', 'trend')),
  position         jsonb NOT NULL DEFAULT '{}',
  config           jsonb NOT NULL DEFAULT '{}',
  data_source      jsonb,
  data_source_id   uuid REFERENCES app.widget_data_sources (id) ON DELETE SET NULL,
  filters          jsonb NOT NULL DEFAULT '[]',
  refresh_interval integer CHECK (refresh_interval IS NULL OR refresh_interval > 0),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_widgets_dashboard_id ON app.dashboard_widgets (dashboard_id);

CREATE TABLE app.user_filter_preferences (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL DEFAULT auth.uid(),
  dashboard_id uuid NOT NULL REFERENCES app.dashboards (id) ON DELETE CASCADE,
  filter_key   text NOT NULL,
  value        jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, dashboard_id, filter_key)
);

CREATE TABLE app.global_filter_defaults (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dashboard_id uuid REFERENCES app.dashboards (id) ON DELETE CASCADE,
  filter_key   text NOT NULL,
  value        jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.widget_data_cache (
  cache_key          text PRIMARY KEY,
  widget_instance_id uuid REFERENCES app.dashboard_widgets (id) ON DELETE CASCADE,
  data               jsonb NOT NULL,
  cached_at          timestamptz NOT NULL,
  expires_at         timestamptz NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX widget_data_cache_expires_at ON app.widget_data_cache (expires_at);
CREATE INDEX widget_data_cache_widget ON app.widget_data_cache (widget_instance_id);

CREATE TRIGGER touch BEFORE UPDATE ON app.dashboards
  FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch BEFORE UPDATE ON app.widget_data_sources
  FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch BEFORE UPDATE ON app.dashboard_widgets
  FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Ownership: a user sees and changes only their own rows. anon has no
-- grants here at all; service_role bypasses RLS.
ALTER TABLE app.dashboards ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.widget_data_sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.dashboard_widgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.user_filter_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.global_filter_defaults ENABLE ROW LEVEL SECURITY;

CREATE POLICY owner_all ON app.dashboards FOR ALL TO authenticated
  USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
CREATE POLICY owner_all ON app.widget_data_sources FOR ALL TO authenticated
  USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
-- A widget belongs to its owner and must sit on one of their dashboards.
CREATE POLICY owner_all ON app.dashboard_widgets FOR ALL TO authenticated
  USING (owner_id = auth.uid())
  WITH CHECK (owner_id = auth.uid()
              AND EXISTS (SELECT 1 FROM app.dashboards d WHERE d.id = dashboard_id AND d.owner_id = auth.uid()));
CREATE POLICY owner_all ON app.user_filter_preferences FOR ALL TO authenticated
  USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
CREATE POLICY read_all ON app.global_filter_defaults FOR SELECT TO authenticated USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE
  ON app.dashboards, app.widget_data_sources, app.dashboard_widgets, app.user_filter_preferences
  TO authenticated, service_role;
GRANT SELECT ON app.global_filter_defaults TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.global_filter_defaults TO service_role;
