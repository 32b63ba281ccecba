-- Sample data for local development: 5,000 servers and the demo user's
-- dashboard. Does nothing when `servers` already has rows, so it is safe
-- on every start. Deterministic shape: setseed fixes the random stream.

DO $$
DECLARE
  demo constant uuid := '5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d';
  board uuid;
BEGIN
  IF EXISTS (SELECT 1 FROM public.servers) THEN
    RETURN;
  END IF;
  PERFORM setseed(0.42);

  INSERT INTO public.servers (hostname, status, region, cpu_pct, memory_mb, created_at)
  SELECT format('%s-%s-%s', role, split_part(region, '-', 1), lpad(g::text, 4, '0')),
         status, region, cpu, mem, created
  FROM (
    SELECT g,
           (ARRAY['web', 'api', 'db', 'cache', 'worker', 'batch'])[1 + floor(random() * 6)::int] AS role,
           (ARRAY['eu-west-1', 'eu-central-1', 'us-east-1', 'us-west-2', 'ap-southeast-1', 'sa-east-1'])
             [1 + floor(random() * 6)::int] AS region,
           CASE WHEN r < 0.62 THEN 'Active'
                WHEN r < 0.80 THEN 'Ready'
                WHEN r < 0.92 THEN 'Maintenance'
                ELSE 'Offline' END AS status,
           round((random() * 100)::numeric, 2)::double precision AS cpu,
           (ARRAY[2048, 4096, 8192, 16384, 32768, 65536])[1 + floor(random() * 6)::int] AS mem,
           date_trunc('second', now() - random() * interval '90 days') AS created
    FROM (SELECT g, random() AS r FROM generate_series(1, 5000) g) s
  ) servers;

  INSERT INTO app.dashboards (owner_id, name, description)
  VALUES (demo, 'Fleet overview', 'The seeded servers at a glance')
  RETURNING id INTO board;

  INSERT INTO app.dashboard_widgets (dashboard_id, owner_id, title, widget_type, position, data_source)
  VALUES
    (board, demo, 'Servers', 'metric', '{"x": 0, "y": 0, "w": 3, "h": 2}',
     '{"table": "servers", "aggregation": "count"}'),
    (board, demo, 'Servers by status', 'chart', '{"x": 3, "y": 0, "w": 5, "h": 4}',
     '{"table": "servers", "aggregation": "count", "groupBy": "status"}'),
    (board, demo, 'Average CPU by region', 'chart', '{"x": 8, "y": 0, "w": 4, "h": 4}',
     '{"table": "servers", "aggregation": "avg", "column": "cpu_pct", "groupBy": "region"}'),
    (board, demo, 'New servers per day', 'trend', '{"x": 0, "y": 4, "w": 12, "h": 4}',
     '{"table": "servers", "aggregation": "count", "timeBucket": {"column": "created_at", "granularity": "day"}}');
END
$$;
