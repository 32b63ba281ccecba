-- The durable cache level is bounded. Each row records what its key was
-- made of (the tables read, their versions, the permissions digest), its
-- size and its last use, so the purge job can delete rows a data or
-- permission change made unreachable, and evict the least recently used
-- when the table outgrows CACHE_TABLE_MAX_MB.
ALTER TABLE app.widget_data_cache
  ADD COLUMN bytes integer NOT NULL DEFAULT 0,
  ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN tables text[] NOT NULL DEFAULT '{}',
  ADD COLUMN versions text[] NOT NULL DEFAULT '{}',
  ADD COLUMN permissions text NOT NULL DEFAULT '';
UPDATE app.widget_data_cache SET bytes = octet_length(data::text);
CREATE INDEX widget_data_cache_last_used_at ON app.widget_data_cache (last_used_at);
