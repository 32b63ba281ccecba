// Seed 004's snippets (`../shared/seeds/004-widget-data-flow-supabase.md`,
// "Step-by-Step: Making a Widget Work") run as written, with supabase-js
// against the binary. Three changes, and only these: the made-up
// 'dashboard-1' is the seeded dashboard's id; `fetch` gets the service's
// address (the snippet's relative URL assumes a page served beside it);
// and it sends the user's token, as every /functions/v1 call needs one
// (so does a Supabase Edge Function that verifies JWTs).
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node seed004.mjs
import assert from 'node:assert/strict';
import { clientFor, suite } from './harness.mjs';

await suite('seed 004 snippets', async ({ url, anon, demo }) => {
  const supabase = clientFor(url, anon, demo);
  const { data: boards } = await supabase.from('dashboards').select('id');
  const dashboardId = boards[0].id;

  // 1. Add widget to dashboard (frontend).
  const widgets = [
    {
      id: 'widget-1',
      type: 'metric',
      data_source: { table: 'servers', aggregation: 'count', groupBy: 'status' },
      // ...other config...
    },
  ];

  // 2. Save widget config to backend (WidgetEditDialog.tsx).
  const { error: saveError } = await supabase.from('dashboard_widgets').insert([
    {
      dashboard_id: dashboardId,
      type: 'metric',
      data_source: { table: 'servers', aggregation: 'count', groupBy: 'status' },
      // ...other config...
    },
  ]);
  assert.equal(saveError, null, JSON.stringify(saveError));
  const { data: saved } = await supabase
    .from('dashboard_widgets')
    .select('widget_type, data_source')
    .eq('dashboard_id', dashboardId)
    .eq('widget_type', 'metric');
  assert.ok(
    saved.some((w) => w.data_source.groupBy === 'status'),
    `the widget is saved as widget_type metric: ${JSON.stringify(saved)}`,
  );

  // 3. Fetch data for widget (MetricWidget.tsx).
  const widget = widgets[0];
  const response = await fetch(url + '/functions/v1/widget-data', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + demo },
    body: JSON.stringify({ config: widget.data_source }),
  });
  const data = await response.json();
  assert.equal(response.status, 200, JSON.stringify(data));

  // 5. Display data in widget: <MetricWidget value={data.total} />.
  const value = data.total;
  assert.equal(value, 5000, 'data.total is every seeded server (the groups added up)');
  assert.equal(
    data.data.reduce((n, row) => n + row.value, 0),
    value,
    'data stays the grouped rows',
  );
  return `insert with type, fetch, data.total = ${value}`;
});
