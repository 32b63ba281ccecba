-- Cache warming (seed 001): after a change, the entries read lately are
-- computed again in the background. Several instances may have read the
-- same entry; the first to claim its new key here computes it, the others
-- then find it in the shared levels. Claims are forgotten after ten
-- minutes by the service's purge.
CREATE TABLE IF NOT EXISTS app.widget_data_warming (
  cache_key text PRIMARY KEY,
  claimed_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON app.widget_data_warming FROM PUBLIC;
