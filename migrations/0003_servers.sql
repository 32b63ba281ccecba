-- The sample table the seed fills and the demo widgets read.

CREATE TABLE public.servers (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  hostname   text NOT NULL,
  status     text NOT NULL CHECK (status IN ('Active', 'Ready', 'Maintenance', 'Offline')),
  region     text NOT NULL,
  cpu_pct    double precision,
  memory_mb  integer,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX servers_status ON public.servers (status);
CREATE INDEX servers_region ON public.servers (region);
CREATE INDEX servers_created_at ON public.servers (created_at);

GRANT SELECT ON public.servers TO anon, authenticated, service_role;
