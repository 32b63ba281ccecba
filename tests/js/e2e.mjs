// Drives a running widget-data with the real supabase-js client, exactly as
// seed 004's frontend does, and checks rows, data and ownership.
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node e2e.mjs
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { clientFor, suite, userToken } from './harness.mjs';

await suite('supabase-js e2e', async (service) => {
  const { url, anon, demo, secret } = service;
  const supabase = clientFor(url, anon, demo);
  const other = clientFor(url, anon, userToken(secret, randomUUID()));

  const { data: boards, error: boardsError } = await supabase.from('dashboards').select('*');
  assert.equal(boardsError, null);
  assert.equal(boards.length, 1, 'the demo user has the seeded dashboard');
  const dashboardId = boards[0].id;

  // Save a widget.
  const dataSource = { table: 'servers', aggregation: 'count', groupBy: 'status' };
  const { data: inserted, error: insertError } = await supabase
    .from('dashboard_widgets')
    .insert([{ dashboard_id: dashboardId, title: 'By status', widget_type: 'chart', data_source: dataSource }])
    .select();
  assert.equal(insertError, null, JSON.stringify(insertError));
  assert.equal(inserted.length, 1);
  const widgetId = inserted[0].id;
  assert.deepEqual(inserted[0].data_source, dataSource);

  // List the dashboard's widgets.
  const { data: listed, error: listError } = await supabase
    .from('dashboard_widgets')
    .select('*')
    .eq('dashboard_id', dashboardId);
  assert.equal(listError, null);
  assert.equal(listed.length, 5, 'four seeded widgets and ours');
  assert.ok(listed.some((w) => w.id === widgetId && w.title === 'By status'));

  // Edit it.
  const { error: updateError } = await supabase
    .from('dashboard_widgets')
    .update({ title: 'Servers by status' })
    .eq('id', widgetId);
  assert.equal(updateError, null);
  const { data: edited } = await supabase.from('dashboard_widgets').select('title').eq('id', widgetId).single();
  assert.equal(edited.title, 'Servers by status');

  // A data source that would not compile is refused, naming the field.
  const { error: invalid } = await supabase
    .from('dashboard_widgets')
    .insert([{ dashboard_id: dashboardId, widget_type: 'chart', data_source: { table: 'no_such_table' } }])
    .select();
  assert.ok(invalid, 'an invalid data source is refused');
  assert.equal(invalid.details.field, 'data_source.table');

  // Query it by id, and the same data source ad hoc: same rows.
  const { data: byId, error: invokeError } = await supabase.functions.invoke('widget-data', {
    body: { widget_id: widgetId },
  });
  assert.equal(invokeError, null);
  const { data: adHoc } = await supabase.functions.invoke('widget-data', { body: { config: dataSource } });
  assert.ok(byId.data.length > 0);
  assert.deepEqual(byId.data, adHoc.data);
  assert.equal(byId.data.reduce((n, row) => n + row.value, 0), 5000, 'every seeded server counted once');

  // A second user sees none of it and can change none of it.
  const { data: theirs } = await other.from('dashboard_widgets').select('*').eq('dashboard_id', dashboardId);
  assert.deepEqual(theirs, []);
  const { data: hijacked } = await other.from('dashboard_widgets').update({ title: 'mine' }).eq('id', widgetId).select();
  assert.deepEqual(hijacked, []);
  const { error: notTheirs } = await other.functions.invoke('widget-data', { body: { widget_id: widgetId } });
  assert.equal(notTheirs?.context?.status, 404, 'another user\'s widget is not found');

  // Delete it.
  const { error: deleteError } = await supabase.from('dashboard_widgets').delete().eq('id', widgetId);
  assert.equal(deleteError, null);
  const { data: after } = await supabase.from('dashboard_widgets').select('id').eq('id', widgetId);
  assert.deepEqual(after, []);
  return 'insert, select, update, single, invalid, invoke, second user, delete';
});
