// postgrest-js's logic filters against the binary: or() across two
// columns, nested and(), not(), in() with values holding commas and
// parentheses, contains() on jsonb, likeAnyOf().
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node logic.mjs
import assert from 'node:assert/strict';
import { clientFor, suite } from './harness.mjs';

const titles = (rows) => rows.map((r) => r.title).sort();

await suite('supabase-js logic filters', async ({ url, anon, demo }) => {
  const supabase = clientFor(url, anon, demo);
  // The seeded widgets: Servers (metric), Servers by status (chart),
  // Average CPU by region (chart), New servers per day (trend).
  const across = await supabase
    .from('dashboard_widgets')
    .select('title')
    .or('widget_type.eq.metric,title.ilike.*cpu*');
  assert.equal(across.error, null, JSON.stringify(across.error));
  assert.deepEqual(titles(across.data), ['Average CPU by region', 'Servers']);

  const nested = await supabase
    .from('dashboard_widgets')
    .select('title')
    .or('widget_type.eq.trend,and(widget_type.eq.chart,title.like.Servers*)');
  assert.deepEqual(titles(nested.data), ['New servers per day', 'Servers by status']);

  const negated = await supabase.from('dashboard_widgets').select('title').not('widget_type', 'eq', 'chart');
  assert.deepEqual(titles(negated.data), ['New servers per day', 'Servers']);

  const contains = await supabase
    .from('dashboard_widgets')
    .select('title')
    .contains('data_source', { groupBy: 'region' });
  assert.equal(contains.error, null, JSON.stringify(contains.error));
  assert.deepEqual(titles(contains.data), ['Average CPU by region']);

  const anyOf = await supabase.from('dashboard_widgets').select('title').likeAnyOf('title', ['New*', '*CPU*']);
  assert.equal(anyOf.error, null, JSON.stringify(anyOf.error));
  assert.deepEqual(titles(anyOf.data), ['Average CPU by region', 'New servers per day']);

  const names = ['a,b', 'c(d)', 'plain'];
  const made = await supabase.from('dashboards').insert(names.map((name) => ({ name }))).select('id');
  assert.equal(made.error, null, JSON.stringify(made.error));
  const quoted = await supabase.from('dashboards').select('name').in('name', ['a,b', 'c(d)']);
  assert.equal(quoted.error, null, JSON.stringify(quoted.error));
  assert.deepEqual(quoted.data.map((r) => r.name).sort(), ['a,b', 'c(d)']);
  return 'or across columns, nested and, not, contains, likeAnyOf, quoted in';
});
