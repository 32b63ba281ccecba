// Counts, HEAD and the `.single()` errors, with the real supabase-js
// client against the binary: paging with `{ count: 'exact' }` and
// `range()`, `{ head: true }`, and `PGRST116` / `.maybeSingle()` on no rows.
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node counts.mjs
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { clientFor, suite, userToken } from './harness.mjs';

await suite('supabase-js counts', async (service) => {
  const { url, anon, demo, secret } = service;
  const supabase = clientFor(url, anon, demo);
  const other = clientFor(url, anon, userToken(secret, randomUUID()));

  const names = ['page-1', 'page-2', 'page-3', 'page-4', 'page-5'];
  const { error: insertError } = await supabase.from('dashboards').insert(names.map((name) => ({ name })));
  assert.equal(insertError, null, JSON.stringify(insertError));

  // Paging: every page carries the total.
  const pages = [];
  for (const [from, to] of [[0, 1], [2, 3], [4, 5]]) {
    const { data, count, error, status } = await supabase
      .from('dashboards')
      .select('name', { count: 'exact' })
      .like('name', 'page-%')
      .order('name')
      .range(from, to);
    assert.equal(error, null, JSON.stringify(error));
    assert.equal(count, 5, `range(${from}, ${to})`);
    assert.equal(status, 206, 'a part of the rows');
    pages.push(...data.map((d) => d.name));
  }
  assert.deepEqual(pages, names, 'the pages together are every row once');

  // `planned` and `estimated` are answered exactly.
  for (const algorithm of ['planned', 'estimated']) {
    const { count } = await supabase.from('dashboards').select('id', { count: algorithm }).like('name', 'page-%');
    assert.equal(count, 5, algorithm);
  }

  // Past the end, with a count: PostgREST's 416.
  const { error: past, status: pastStatus } = await supabase
    .from('dashboards')
    .select('name', { count: 'exact' })
    .like('name', 'page-%')
    .range(10, 11);
  assert.equal(pastStatus, 416);
  assert.equal(past?.code, 'PGRST103');

  // HEAD: the count and no rows.
  const { data: headData, count: headCount, error: headError, status: headStatus } = await supabase
    .from('dashboards')
    .select('*', { count: 'exact', head: true })
    .like('name', 'page-%');
  assert.equal(headError, null, JSON.stringify(headError));
  assert.equal(headStatus, 200);
  assert.equal(headData, null);
  assert.equal(headCount, 5);

  // Another user counts none of them.
  const { count: theirs } = await other
    .from('dashboards')
    .select('*', { count: 'exact', head: true })
    .like('name', 'page-%');
  assert.equal(theirs, 0);

  // `.single()` on no rows: the code to branch on.
  const { data: single, error: singleError, status: singleStatus } = await supabase
    .from('dashboards')
    .select('*')
    .eq('name', 'no such dashboard')
    .single();
  assert.equal(single, null);
  assert.equal(singleStatus, 406);
  assert.equal(singleError?.code, 'PGRST116', JSON.stringify(singleError));

  // ... and on two.
  const { error: twoError } = await supabase.from('dashboards').select('*').in('name', ['page-1', 'page-2']).single();
  assert.equal(twoError?.code, 'PGRST116');

  // `.maybeSingle()` on no rows: no data and no error; on one, the row.
  const maybe = await supabase.from('dashboards').select('*').eq('name', 'no such dashboard').maybeSingle();
  assert.equal(maybe.error, null, JSON.stringify(maybe.error));
  assert.equal(maybe.data, null);
  const one = await supabase.from('dashboards').select('name').eq('name', 'page-3').maybeSingle();
  assert.equal(one.error, null);
  assert.deepEqual(one.data, { name: 'page-3' });

  // A write's `.maybeSingle()` (Accept: object) matching nothing: the
  // 406's details say 0 rows, which supabase-js turns into no error.
  const unchanged = await supabase
    .from('dashboards')
    .update({ description: 'x' })
    .eq('name', 'no such dashboard')
    .select()
    .maybeSingle();
  assert.equal(unchanged.error, null, JSON.stringify(unchanged.error));
  assert.equal(unchanged.data, null);

  return 'range paging with count, planned/estimated, 416, head, second user, single, maybeSingle';
});
